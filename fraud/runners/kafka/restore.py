"""Partition state on assignment: a worker's `StreamTask` and its recovery (Quix Streams'
`state/recovery.py`, Kafka Streams' `StreamTask`).

Where a partition's state comes from when it is assigned (a restart, a crash, a rebalance):
- the committed offset's metadata carries `r`, the *replay bound*: the earliest input offset whose
  events can still matter (every event before it is older than the longest window plus allowed
  lateness behind the watermark), and `m`, the partition's max event time;
- a local store checkpointed exactly at the committed offset is used as is; one behind it replays the
  gap without emitting; a missing, foreign or ahead-of-Kafka store is rebuilt by replaying the input
  from `r` without emitting. The result equals the state of an uninterrupted run for every decision
  still to come (docs/kafka.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

import orjson
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from fraud.core.detector import Detector
from fraud.core.records import BadRecord, decode
from fraud.settings.kafka import KafkaSettings
from fraud.settings.pipeline import PipelineConfig
from fraud.state.store import StateStore

MARK_EVERY_MS = 60_000  # a replay-bound mark at most every minute of event time
REPLAY_BATCH = 1000


class PartitionTask:
    """One assigned input partition: its detector, its store and its replay bookkeeping."""

    def __init__(
        self, topic: str, partition: int, path: Path, make_detector, cfg: PipelineConfig, checkpoint_interval_ms: int
    ) -> None:
        self.topic, self.partition, self.path = topic, partition, path
        self._make = make_detector
        self._cfg = cfg
        self._interval_s = checkpoint_interval_ms / 1000  # `kafka.checkpoint_interval_ms`
        self.store = StateStore(path, cache_size=cfg.cache_cards, max_events=cfg.detector.max_events_per_card)
        self.detector: Detector = make_detector(self.store)
        meta = self.store.meta() or {}
        self.position: int | None = meta.get("offset")
        self.replay_from: int = meta.get("replay_from", 0)
        self.marks: list[list[int]] = meta.get("marks", [])
        self.checkpointed: int | None = self.position  # the input position the store holds
        self.checkpointed_at = time.monotonic()

    # -- bookkeeping -------------------------------------------------------------------------
    def after_record(self, offset: int) -> None:
        self.position = offset + 1

    def _advance_bound(self) -> None:
        det = self.detector
        if det.max_ts is None or self.position is None:
            return
        marks = self.marks
        if not marks or det.max_ts - marks[-1][1] >= MARK_EVERY_MS:
            marks.append([self.position, det.max_ts])
        cutoff = det.history_cutoff()
        k = 0
        while k < len(marks) and marks[k][1] < cutoff:
            k += 1
        if k:
            self.replay_from = max(self.replay_from, marks[k - 1][0])
            del marks[: k - 1]

    def commit_metadata(self) -> str:
        self._advance_bound()
        return orjson.dumps({"r": self.replay_from, "m": self.detector.max_ts}).decode()

    def checkpoint_due(self, now: float, force: bool) -> bool:
        """Whether the state has moved since the last checkpoint and `kafka.checkpoint_interval_ms` (or
        `state.checkpoint_every` records) has passed: a store checkpointed behind the committed offset
        only replays the gap on restore, so checkpoints need not follow every commit."""
        if self.position == self.checkpointed:
            return False
        if force or now - self.checkpointed_at >= self._interval_s:
            return True
        return (self.position or 0) - (self.checkpointed or 0) >= self._cfg.checkpoint_every

    def checkpoint(self) -> None:
        self.checkpointed, self.checkpointed_at = self.position, time.monotonic()
        self.store.checkpoint(
            {
                **self.detector.checkpoint_meta(),
                "offset": self.position,
                "replay_from": self.replay_from,
                "marks": self.marks,
                "topic": self.topic,
                "partition": self.partition,
            },
            forget_before=self.detector.history_cutoff() if self.detector.max_ts is not None else None,
        )

    def reset_empty(self, replay_from: int) -> None:
        self.store.close()
        StateStore.wipe(self.path)
        self.store = StateStore(
            self.path, cache_size=self._cfg.cache_cards, max_events=self._cfg.detector.max_events_per_card
        )
        self.detector = self._make(self.store)
        self.position = replay_from
        self.replay_from = replay_from
        self.marks = []
        self.checkpointed = None

    def close(self) -> None:
        self.store.close()


def checkpoints_due(tasks: Iterable[PartitionTask], force: bool = False) -> list[PartitionTask]:
    """The stores to checkpoint after a commit: the one most overdue (every one due with `force`).

    Partitions assigned together fall due together, and four checkpoints in one commit held the
    loop, and every record waiting behind it, four times as long (5-22 ms each at 5,000 tx/s);
    the others follow in the next commits."""
    now = time.monotonic()
    due = [t for t in tasks if t.checkpoint_due(now, force)]
    return due if force else sorted(due, key=lambda t: t.checkpointed_at)[:1]


class Restorer:
    """Opens an assigned partition's task and brings its state to the committed offset, replaying
    the input without emitting; `replayed` counts the records it fed."""

    def __init__(
        self,
        settings: KafkaSettings,
        cfg: PipelineConfig,
        state_root: Path,
        make_detector: Callable[[StateStore], Detector],
    ) -> None:
        self.settings = settings
        self.cfg = cfg
        self.state_root = state_root
        self.make_detector = make_detector
        self.replayed = 0

    def restore(self, tp: TopicPartition, consumer: Consumer) -> PartitionTask:
        """`tp` as returned by `consumer.committed`: its offset and metadata are Kafka's truth."""
        path = self.state_root / f"{tp.topic}-{tp.partition}"
        task = PartitionTask(
            tp.topic, tp.partition, path, self.make_detector, self.cfg, self.settings.checkpoint_interval_ms
        )
        if tp.offset == OFFSET_INVALID or tp.offset < 0:  # nothing committed: start from the beginning
            low, _ = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if task.position != low:
                task.reset_empty(low)
            return task
        meta = orjson.loads(tp.metadata) if tp.metadata else {}
        bound = int(meta.get("r", 0))
        if task.position == tp.offset:
            return task
        if task.position is None or task.position > tp.offset or task.position < bound:
            task.reset_empty(bound)
        self.replay(task, tp.offset)
        return task

    def replay(self, task: PartitionTask, until: int) -> None:
        """Feed [task.position, until) of the input through the detector, emitting nothing."""
        if task.position >= until:
            return
        reader = Consumer(
            self.settings.client_config(
                **{
                    "group.id": f"{self.settings.group}-replay",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    "auto.offset.reset": "earliest",
                }
            )
        )
        reader.assign([TopicPartition(task.topic, task.partition, task.position)])
        det = task.detector
        part = [TopicPartition(task.topic, task.partition)]
        try:
            while task.position < until:
                txs = []
                marked = task.position // 5000
                for m in reader.consume(REPLAY_BATCH, timeout=1.0):
                    if m.error():
                        if m.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise KafkaException(m.error())
                    if m.offset() >= until:
                        break
                    try:
                        txs.append(decode(m.value()))
                    except BadRecord:
                        pass
                    task.after_record(m.offset())
                    self.replayed += 1
                det.run(txs)
                if task.position // 5000 != marked:
                    task.commit_metadata()  # keep the replay bound moving during long replays
                # Offsets may have gaps (transaction markers, compaction): trust the reader's position.
                pos = reader.position(part)[0].offset
                if pos >= until:
                    task.position = until
        finally:
            reader.close()
        task.commit_metadata()
        task.checkpoint()


def committed_offsets(
    consumer: Consumer, parts: list[TopicPartition], rebalanced: Callable[[], bool]
) -> list[TopicPartition] | None:
    """Kafka's committed offsets of `parts`, or None if the group rebalanced while we waited
    (`rebalanced()`: then the assignment callback has restored the partitions from Kafka).

    The consumer is polled between attempts: after a broker pause the group may have dropped us,
    and librdkafka answers the offset fetch only once we have rejoined, which takes poll() calls
    (without them a worker once waited on itself for good). What those polls fetch is dropped: the
    rewind seeks to the committed offsets, and a new assignment starts from them."""
    for attempt in range(60):
        try:
            return consumer.committed(parts, timeout=5)
        except KafkaException:
            if attempt == 59:
                raise
        consumer.poll(0.5)
        if rebalanced():
            return None
    return None
