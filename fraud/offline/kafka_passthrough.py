"""The Kafka baseline of `fraud bench --kafka`: consume, decode and validate, produce; nothing else.

What any consumer of the transactions topic pays before deciding anything: the same fetches, the
same record decoding as the detector, and one small JSON record produced per transaction. No state,
no transactions: offsets are committed asynchronously after each batch (at-least-once), so this is
the floor the detector's two guarantees are compared with.

Run as its own process, as the detector is: `python -m fraud.offline.kafka_passthrough BOOTSTRAP
GROUP INPUT_TOPIC OUTPUT_TOPIC`; it stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys

import orjson
from confluent_kafka import Consumer, Producer

from fraud.core.records import BadRecord, decode
from fraud.offline.kafka_drain import produce_waiting


def run(bootstrap: str, group: str, input_topic: str, output_topic: str) -> None:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 20,
        }
    )
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "enable.idempotence": True})
    consumer.subscribe([input_topic])
    dumps = orjson.dumps
    try:
        while not stopping:
            msgs = consumer.consume(5000, 0.2)
            for m in msgs:
                if m.error() is not None:
                    continue
                try:
                    tx = decode(m.value())
                except BadRecord:
                    continue
                value = dumps({"tx_id": tx.tx_id, "card_id": tx.card_id, "event_time": tx.event_time})
                produce_waiting(producer, output_topic, m.key(), value)
            producer.poll(0)
            if msgs:
                consumer.commit(asynchronous=True)
    finally:
        producer.flush(30)
        consumer.close()


if __name__ == "__main__":
    run(*sys.argv[1:5])
