"""Global tables on Kafka: a topic every worker reads whole, whatever partitions the group gave it.

Kafka Streams calls this a GlobalKTable. Two tables work this way here:

* the fraud reports (`feedback` topic) -> `FeedbackIndex`, read to its end before the first decision
  and followed afterwards; a report only counts from its `reported_at`, so reading ahead is harmless;
* the merchant table (`MerchantTable`), built from the transactions topic itself: every worker
  reads all its partitions (no group, from the start) and counts each valid transaction by merchant.
  Merchant features are read 7 days behind the event being decided, so a worker only needs every
  partition to be past that point, not in step with it: `wait_for(ts)` blocks until each partition
  of the topic has been read beyond `ts` plus the allowed lateness (or to its end). Then the table
  holds what an embedded run would hold at that event, unless a transaction arrives more than the
  allowed lateness late or more than 7 days late: such stragglers may count in one mode and not the
  other. Both tables are read to their end before the worker joins the group, then polled once per
  batch.

Why the input topic and not a compacted changelog of merchant aggregates: aggregates written by each
partition's owner would need a protocol to say when an hour is complete for every partition before
anyone may read it; the input topic already is the complete, ordered truth, and reading it costs one
JSON decode per transaction of the partitions a worker does not own (its own partitions' records are
decoded once for both readers, `shared_decodes.py`). The price is that the transactions topic must be retained
for at least 38 days (7-day delay + 30-day window + a day of lateness), and a starting worker
reads that much.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Message, TopicPartition

from fraud.core.records import BadRecord, parse_time
from fraud.runners.kafka.shared_decodes import SharedDecodes
from fraud.scoring.features import MERCHANT_FEATURES
from fraud.settings.kafka import KafkaSettings
from fraud.state.feedback import FeedbackIndex
from fraud.state.merchant_table import DELAY_MS, MerchantTable

INF = float("inf")
# The merchant table reads 7 days behind the events it serves, so its reader need not fetch each
# record the moment it lands: fetches of 256 kB or 100 ms, not one per millisecond of traffic. At
# 5,000 tx/s this took the broker from 0.80 to 0.67 of a core and the worker from 0.64 to 0.59
# (three runs each).
LAZY_FETCH = {"fetch.wait.max.ms": 100, "fetch.min.bytes": 256 * 1024}


class GlobalReader:
    """Reads every partition of `topic` from the beginning; `on_message(message)` returns the record's
    event time in ms (or None) so that `covered` can say how far every partition has been read."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        name: str,
        instance: str,
        on_message: Callable[[Message], int | None],
        lateness_ms: int = 0,
        fetch: dict | None = None,
    ) -> None:
        self.topic = topic
        self.on_message = on_message
        self.lateness_ms = lateness_ms
        self.consumer = Consumer(
            settings.client_config(
                **{
                    "group.id": f"{settings.group}-{name}-{instance}",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    # if retention deletes the oldest segment under us, go on from the oldest kept record
                    "auto.offset.reset": "earliest",
                    "fetch.wait.max.ms": 20,
                    **(fetch or {}),
                }
            )
        )
        self.partitions: list[int] = []
        self._max_ts: dict[int, float] = {}
        self._eof: set[int] = set()
        self._next: dict[int, int] = {}  # the offset after the last record read, by partition
        self.covered = INF  # every partition has been read past this event time (or to its end)
        self._checked = 0.0
        self._assign()

    def _assign(self) -> None:
        """Assign every partition from the start; a topic that does not exist yet is an empty table
        until it appears (checked again at most once a second). Partitions added later are not read."""
        self._checked = time.monotonic()
        meta = self.consumer.list_topics(self.topic, timeout=10).topics[self.topic]
        if meta.error is not None or not meta.partitions:
            return
        self.partitions = sorted(meta.partitions)
        self._max_ts = {p: -INF for p in self.partitions}
        self.covered = -INF
        self.consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in self.partitions])

    def is_empty(self, partition: int) -> bool:
        """Read to its end without a single record."""
        return partition in self._eof and self._max_ts.get(partition, -INF) == -INF

    def poll(self, max_messages: int = 2000, timeout: float = 0.0) -> int:
        """Read what is there (called once per batch, so the table follows the topic).

        End of partition is as of the last read: a record produced since then is read by the next
        poll; until then it is not waited for, which matters only for a record that arrives after
        events later than it by more than the 7-day delay (plus lateness) were decided.
        """
        if not self.partitions:
            if time.monotonic() - self._checked >= 1.0:
                self._assign()
            if not self.partitions:
                if timeout:
                    time.sleep(timeout)
                return 0
        msgs = self.consumer.consume(max_messages, timeout)
        for m in msgs:
            err = m.error()
            p = m.partition()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    self._eof.add(p)
                    continue
                if err.fatal():
                    raise KafkaException(err)
                continue  # transient (broker away): librdkafka retries by itself
            self._eof.discard(p)
            self._next[p] = m.offset() + 1
            ts = self.on_message(m)
            if ts is not None and ts > self._max_ts[p]:
                self._max_ts[p] = ts
        if msgs:
            self.covered = min(INF if p in self._eof else self._max_ts[p] - self.lateness_ms for p in self.partitions)
        return len(msgs)

    def read_to_end(self) -> None:
        """Called before joining the group: a long first read must not count against the group's
        max.poll.interval.ms. Reads up to each partition's end as it was when the read began (or
        its end of partition): under steady traffic every partition at its end at once may never
        happen, and the worker would never start (Kafka Streams' global stores restore the same way)."""
        if not self.partitions:
            return
        ends = {
            p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in self.partitions
        }
        done: set[int] = set()
        while len(done) < len(self.partitions):
            self.poll(5000, 1.0)
            done.update(p for p in self.partitions if p in self._eof or self._next.get(p, 0) >= ends[p])

    def wait_for(self, ts: int, stopping: Callable[[], bool]) -> None:
        """Block until every partition has been read past event time `ts` (or to its end)."""
        while self.covered < ts and not stopping():
            self.poll(5000, 0.2)

    def close(self) -> None:
        self.consumer.close()


class GlobalTables:
    """A worker's two global tables: the fraud reports (if `feedback_topic`) and the merchant table
    (if a rule or the model reads a merchant feature), each with its reader."""

    def __init__(
        self,
        settings: KafkaSettings,
        input_topic: str,
        feedback_topic: str | None,
        instance: str,
        features: set[str],
        lateness_ms: int,
    ) -> None:
        self.settings = settings
        self.input_topic = input_topic
        self.feedback = FeedbackIndex()  # global: every worker reads every report
        self.bad_reports = 0
        self.merchants = MerchantTable(lateness_ms) if features & MERCHANT_FEATURES else None
        # the worker's and the merchant reader's decodes of the same records, each done once
        self.decodes = SharedDecodes() if self.merchants is not None else None
        self.feedback_reader = None
        if feedback_topic:
            self.feedback_reader = GlobalReader(settings, feedback_topic, "feedback", instance, self._add_report)
        self.merchant_reader = None
        if self.merchants is not None:
            self.merchants.auto_sweep = False  # swept behind the slowest partition of the group instead
            self.merchant_reader = GlobalReader(
                settings, input_topic, "merchants", instance, self._add_merchant_tx, lateness_ms, LAZY_FETCH
            )
        self._last_sweep = time.monotonic()

    @property
    def readers(self) -> list[GlobalReader]:
        return [r for r in (self.feedback_reader, self.merchant_reader) if r is not None]

    def read_to_end(self) -> None:
        """Before the first decision: reports and merchants as far as the topics go."""
        for reader in self.readers:
            reader.read_to_end()

    def _add_report(self, m: Message) -> int | None:
        """Index one report; its `reported_at` tells the reader how far the feedback topic is read."""
        try:
            rec = orjson.loads(m.value() or b"")
            if isinstance(rec, dict):
                self.feedback.add(rec)
                return parse_time(rec.get("reported_at"), "reported_at")
        except (orjson.JSONDecodeError, BadRecord):
            self.bad_reports += 1
        return None

    def _add_merchant_tx(self, m: Message) -> int | None:
        tx = self.decodes.for_table(m.partition(), m.offset(), m.value())
        if isinstance(tx, BadRecord):
            return None
        self.merchants.add(tx.merchant_id, tx.card_id, tx.ts)
        return tx.ts

    def ready_for(self, newest: int | None, stopping: Callable[[], bool]) -> bool:
        """Wait until the tables hold what a batch whose newest event time is `newest` reads: reports
        up to it, merchants up to 7 days before it. False if `stopping()` ended the wait."""
        for reader, need in (
            (self.feedback_reader, newest),
            (self.merchant_reader, None if newest is None else newest - DELAY_MS),
        ):
            if reader is None:
                continue
            reader.poll()
            if need is not None and need > reader.covered:
                reader.wait_for(need, stopping)
                if stopping():
                    return False
        return True

    def cannot_serve(self, features: list[str]) -> str | None:
        """Why rules reading `features` cannot apply live, or None: merchant features come from the
        merchant table, which a worker reads only when started with a use for it."""
        needs = [f for f in features if f in MERCHANT_FEATURES]
        if needs and self.merchants is None:
            return (
                f"its rules read {', '.join(needs)}, and this worker was started without the global merchant "
                "table they come from: restart the workers to use them"
            )
        return None

    def sweep(self, consumer: Consumer) -> None:
        """Drop merchant buckets no partition of the group can still need: behind the oldest event
        time committed on any partition (none dropped while a partition has no commit yet). At most
        once a minute (it asks the broker for the group's offsets)."""
        reader = self.merchant_reader
        if reader is None or time.monotonic() - self._last_sweep < 60:
            return
        self._last_sweep = time.monotonic()
        try:
            committed = consumer.committed([TopicPartition(self.input_topic, p) for p in reader.partitions], timeout=10)
        except KafkaException:
            return
        oldest = None
        for tp in committed:
            try:
                meta = orjson.loads(tp.metadata) if tp.metadata else {}
            except orjson.JSONDecodeError:
                meta = {}
            m = meta.get("m") if isinstance(meta, dict) else None
            if m is None:
                if reader.is_empty(tp.partition):
                    continue  # nothing there to decide: constrains nothing
                return  # a partition not yet decided from may need everything
            oldest = m if oldest is None else min(oldest, m)
        if oldest is not None:
            self.merchants.sweep_behind(int(oldest))

    def close(self) -> None:
        for reader in self.readers:
            reader.close()
