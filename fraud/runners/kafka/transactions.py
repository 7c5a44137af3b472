"""The transactional producer: one Kafka transaction per batch, and every way one can fail.

A batch's decisions, dead letters and consumed offsets are one transaction. What can go wrong, and
what happens then, in one place:

* a retriable error while committing (the broker is restarting): the commit is retried;
* any other error: the transaction is aborted (retried while the broker is away) and the worker
  rewinds its partitions to what Kafka has committed;
* a fenced producer (the broker timed our transaction out, or another worker took our id): a new
  producer fences the old one, then the worker rewinds; fenced again and again within minutes means
  another worker runs with our `--instance`, and the worker stops with a message;
* a call that never returns (librdkafka issues #5456/#5511: after the group coordinator restarts,
  `send_offsets_to_transaction()` can ignore its timeout): after a deadline the producer is
  replaced as if fenced, and the stuck one is kept alive (the stuck call still holds it).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition

from fraud.errors import UserError
from fraud.settings.kafka import KafkaSettings

CALL_DEADLINE_S = 20.0
FENCED_WINDOW_S = 600.0
FENCED_MAX = 5


def producer_config(settings: KafkaSettings, instance: str, **extra: object) -> dict:
    """What both guarantees' producers share: idempotent, a short linger, lz4, named by instance."""
    return settings.client_config(
        **{
            "enable.idempotence": True,
            "linger.ms": 2,
            "compression.type": "lz4",
            "client.id": f"fraud-{instance}",
            **extra,
        }
    )


class Stuck(Exception):
    """A client call outlived its deadline."""


def with_deadline(fn: Callable, *args: Any, deadline: float = CALL_DEADLINE_S) -> Any:
    """Run a blocking client call in a helper thread; raise Stuck if it does not return in time."""
    box: dict = {}

    def call() -> None:
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # handed back to the caller's thread
            box["error"] = exc

    t = threading.Thread(target=call, name="kafka-txn-call", daemon=True)
    t.start()
    t.join(deadline)
    if t.is_alive():
        raise Stuck(getattr(fn, "__name__", "call"))
    if "error" in box:
        raise box["error"]
    return box.get("result")


def retrying(
    call: Callable[[], Any],
    attempts: int,
    delay_s: float,
    retry_if: Callable[[KafkaError], bool] = lambda error: True,
    until: float | None = None,
) -> Any:
    """`call()`, again after `delay_s` on a KafkaException that `retry_if` accepts, at most
    `attempts` times and not after the monotonic time `until`; the last failure is raised."""
    for attempt in range(attempts):
        try:
            return call()
        except KafkaException as exc:
            late = until is not None and time.monotonic() + delay_s >= until
            if attempt == attempts - 1 or late or not retry_if(exc.args[0]):
                raise
            time.sleep(delay_s)
    raise AssertionError("unreachable")


class Transactions:
    """Owns the worker's transactional producer. `commit` or `abort` end each transaction; when
    one is lost, `on_rewind()` is called (the worker goes back to Kafka's committed offsets)."""

    def __init__(self, settings: KafkaSettings, instance: str, on_rewind: Callable[[], None]) -> None:
        self.settings = settings
        self.instance = instance
        self._on_rewind = on_rewind
        self._stuck: list[Producer] = []  # never freed: a stuck call still uses them
        self._fenced_at: list[float] = []
        self.producer = self._new_producer()

    def _new_producer(self) -> Producer:
        """`init_transactions` fences any earlier producer with our id and aborts what it left open."""
        s = self.settings
        producer = Producer(
            producer_config(
                s,
                self.instance,
                **{
                    "transactional.id": f"fraud-{s.group}-{self.instance}",
                    "transaction.timeout.ms": s.transaction_timeout_ms,
                    # A transaction begun right after a commit finds the coordinator still
                    # completing it (CONCURRENT_TRANSACTIONS, KAFKA-5477), and librdkafka retries
                    # after retry.backoff.ms, 100 ms by default: most of a batch's latency.
                    # Retries back off exponentially from here up to retry.backoff.max.ms (1 s by
                    # default; 10 ms cut a 25-message transaction's p50 from 7-8 ms to 6, 1,000 transactions each).
                    "retry.backoff.ms": 1,
                    "retry.backoff.max.ms": 10,
                },
            )
        )
        try:
            producer.init_transactions(60)
        except KafkaException as exc:
            raise UserError(
                f"Kafka at {s.bootstrap}: cannot start a transactional producer ({exc.args[0].str()})"
            ) from None
        return producer

    def begin(self) -> Producer:
        self.producer.begin_transaction()
        return self.producer

    def commit(self, offsets: list[TopicPartition], group_metadata: object) -> bool:
        """Commit the open transaction with the consumed `offsets`; False if it was lost instead
        (aborted or fenced: `on_rewind` has run)."""
        producer = self.producer
        try:
            if offsets:
                with_deadline(producer.send_offsets_to_transaction, offsets, group_metadata, 15)
            # within the transaction timeout: past it the broker aborts the transaction anyway
            until = time.monotonic() + self.settings.transaction_timeout_ms / 1000
            retrying(lambda: with_deadline(producer.commit_transaction, 5), 20, 0.5, KafkaError.retriable, until)
            return True
        except Stuck:
            self._replace()
        except KafkaException as exc:
            if exc.args[0].fatal():
                self._fenced(exc.args[0])
            else:
                self.abort()
        return False

    def abort(self) -> None:
        """Abort the open transaction (retrying while the broker is away), then rewind.

        A producer whose abort still times out after twice the transaction timeout is replaced: after
        a broker restart on a loaded machine, librdkafka once kept its request to the transaction
        coordinator queued for minutes ("1 out-queue" timeouts every 10 s) with the broker back up.
        Its successor's `init_transactions` fences it and has the open transaction aborted."""
        until = time.monotonic() + 2 * self.settings.transaction_timeout_ms / 1000
        try:
            retrying(lambda: with_deadline(self.producer.abort_transaction, 5), 60, 1.0, lambda e: not e.fatal(), until)
        except Stuck:
            self._replace()
            return
        except KafkaException as exc:
            if exc.args[0].fatal():
                self._fenced(exc.args[0])
            else:
                self._replace()
            return
        self._on_rewind()

    def _fenced(self, error: KafkaError) -> None:
        now = time.monotonic()
        self._fenced_at = [t for t in self._fenced_at if now - t < FENCED_WINDOW_S] + [now]
        if len(self._fenced_at) > FENCED_MAX:
            raise UserError(
                f"Kafka transactions keep failing ({error.str()}); is another worker using --instance {self.instance}?"
            )
        self._replace()

    def _replace(self) -> None:
        """A new producer with the same transactional id fences the old one, then rewind."""
        self._stuck.append(self.producer)
        self.producer = self._new_producer()
        self._on_rewind()

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)


class AtLeastOnce:
    """The other delivery guarantee, with `Transactions`' interface: decisions are produced as soon
    as they are made (an idempotent producer, no transaction, nothing for readers to wait on), and a
    batch's input offsets are committed once every one of its outputs is delivered. After a crash the
    records since the last commit are decided again; a restored partition decides them exactly as
    before, so the repeats carry the same key and the same value (the worker keeps the only varying
    field, `latency_ms`, in a header in this mode): a reader that keeps the last record per `tx_id`
    sees exactly-once results."""

    def __init__(self, settings: KafkaSettings, instance: str, on_rewind: Callable[[], None], consumer: Any) -> None:
        self.settings = settings
        self.instance = instance
        self._on_rewind = on_rewind
        self._consumer = consumer
        self._failed = 0
        # No linger: a batch's decisions are produced together anyway, and every millisecond a
        # decision lingers is latency (at 5,000 tx/s, p50 3.5 -> 1.8 ms end to end). Exactly-once keeps
        # its 2 ms: `commit_transaction` flushes at once, and fewer produce requests mean a calmer broker.
        self.producer = Producer(
            producer_config(
                settings,
                instance,
                **{"delivery.report.only.error": True, "on_delivery": self._delivered, "linger.ms": 0},
            )
        )

    def _delivered(self, error: KafkaError | None, message: object) -> None:
        if error is not None:
            self._failed += 1

    def begin(self) -> Producer:
        self._failed = 0
        return self.producer

    def commit(self, offsets: list[TopicPartition], group_metadata: object) -> bool:
        """Wait until the batch's outputs are delivered, then commit its offsets; False (and a
        rewind: the batch is decided again) if an output was not delivered or the commit failed."""
        if self.producer.flush(self.settings.transaction_timeout_ms / 1000) or self._failed:
            self._on_rewind()
            return False
        if offsets:
            try:
                retrying(
                    lambda: self._consumer.commit(offsets=offsets, asynchronous=False), 20, 0.5, KafkaError.retriable
                )
            except KafkaException:
                self._on_rewind()
                return False
        return True

    def abort(self) -> None:
        """A batch that could not be produced whole: deliver what was, then decide it again."""
        self.producer.flush(self.settings.transaction_timeout_ms / 1000)
        self._on_rewind()

    def flush(self, timeout_s: float) -> None:
        self.producer.flush(timeout_s)
