"""The detector as a Kafka consumer-group member, exactly-once.

Per batch: one Kafka transaction holds the decisions, the dead letters and the consumed offsets
(`send_offsets_to_transaction`), so `read_committed` readers see each decision once. Each assigned
partition has its own `Detector` and RocksDB store; after the transaction commits, the store
checkpoints the state that matches the committed offset.

Where a partition's state comes from when it is assigned (a restart, a crash, a rebalance):
- the committed offset's metadata carries `r`, the *replay bound*: the earliest input offset whose
  events can still matter (every event before it is older than the longest window plus allowed
  lateness behind the watermark), and `m`, the partition's max event time;
- a local store checkpointed exactly at the committed offset is used as is; one behind it replays the
  gap without emitting; a missing, foreign or ahead-of-Kafka store is rebuilt by replaying the input
  from `r` without emitting. The result equals the state of an uninterrupted run for every decision
  still to come (see README, "Kafka").
"""

from __future__ import annotations

import faulthandler
import signal
import socket
import threading
import sys
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING

import orjson
from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, Producer, TopicPartition

from .config import PipelineConfig
from .detector import Detector
from .redact import mask_pans, mask_text
from .feedback import FeedbackIndex
from .features import MERCHANT_FEATURES
from .kafka_global import GlobalReader
from .merchant_table import DELAY_MS, MerchantTable
from .errors import UserError
from .kafka_config import KafkaSettings
from .model import FastModel
from .records import BadRecord, decode, parse_time
from .rules import RuleSet
from .state_store import StateStore

if TYPE_CHECKING:
    from .metrics import WorkerMetrics

MARK_EVERY_MS = 60_000  # a replay-bound mark at most every minute of event time
TXN_CALL_DEADLINE_S = 20.0


class _Stuck(Exception):
    """A transactional call outlived its deadline (librdkafka issues #5456/#5511: after the group
    coordinator restarts, send_offsets_to_transaction() can ignore its timeout and hang)."""


def _with_deadline(fn, *args, deadline: float = TXN_CALL_DEADLINE_S):
    """Run a blocking client call in a helper thread; raise _Stuck if it does not return in time."""
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
        raise _Stuck(getattr(fn, "__name__", "call"))
    if "error" in box:
        raise box["error"]
    return box.get("result")


class PartitionTask:
    """One assigned input partition: its detector, its store and its replay bookkeeping."""

    def __init__(self, topic: str, partition: int, path: Path, make_detector, cfg: PipelineConfig) -> None:
        self.topic, self.partition, self.path = topic, partition, path
        self._make = make_detector
        self._cfg = cfg
        self.store = StateStore(path, cache_size=cfg.cache_cards)
        self.detector: Detector = make_detector(self.store)
        meta = self.store.meta() or {}
        self.position: int | None = meta.get("offset")
        self.replay_from: int = meta.get("replay_from", 0)
        self.marks: list[list[int]] = meta.get("marks", [])

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
            del marks[:k - 1]

    def commit_metadata(self) -> str:
        self._advance_bound()
        return orjson.dumps({"r": self.replay_from, "m": self.detector.max_ts}).decode()

    def checkpoint(self) -> None:
        self.store.checkpoint({**self.detector.checkpoint_meta(), "offset": self.position,
                               "replay_from": self.replay_from, "marks": self.marks,
                               "topic": self.topic, "partition": self.partition})

    def reset_empty(self, replay_from: int) -> None:
        self.store.close()
        StateStore.wipe(self.path)
        self.store = StateStore(self.path, cache_size=self._cfg.cache_cards)
        self.detector = self._make(self.store)
        self.position = replay_from
        self.replay_from = replay_from
        self.marks = []

    def close(self) -> None:
        self.store.close()


class KafkaRunner:
    def __init__(self, settings: KafkaSettings, cfg: PipelineConfig, rules: RuleSet | None,
                 model: FastModel | None, state_root: str | Path, instance: str | None = None,
                 input_topic: str | None = None, output_topic: str | None = None,
                 stop_when_idle: float | None = None, status: bool | None = None,
                 feedback_topic: str | None = None) -> None:
        self.settings = settings
        self.cfg = cfg
        self.rules, self.model = rules, model
        self.instance = instance or socket.gethostname()
        self.input_topic = input_topic or settings.topics["transactions"]
        self.output_topic = output_topic or settings.topics["decisions"]
        self.dlq_topic = settings.topics["dead_letters"]
        self.state_root = Path(state_root) / settings.group / self.instance
        self.stop_when_idle = stop_when_idle
        self.status = sys.stderr.isatty() if status is None else status
        self.feedback_topic = feedback_topic
        self.metrics: WorkerMetrics | None = None  # set by the CLI with --metrics-port
        self.feedback = FeedbackIndex()  # global: every worker reads every report
        self.tasks: dict[int, PartitionTask] = {}
        self._stuck_producers: list[Producer] = []
        self._fatal_times: list[float] = []
        self.stopping = False
        self.counts = {"allow": 0, "review": 0, "block": 0, "dead_letters": 0, "replayed": 0}
        self.latencies: deque[float] = deque(maxlen=20_000)  # recent ones: memory stays flat
        self._status_n, self._status_t = 0, time.monotonic()
        self._last_sweep = time.monotonic()

    # -- setup -------------------------------------------------------------------------------
    def _make_detector(self, store: StateStore) -> Detector:
        det = Detector(store, rules=self.rules, model=self.model, settings=self.cfg.detector,
                       feedback=self.feedback)
        if self.merchant_reader is not None:
            det.use_merchant_table(self.merchants)
        return det

    def _clients(self) -> None:
        s = self.settings
        self.consumer = Consumer(s.client_config(**{
            "group.id": s.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "enable.partition.eof": False,
            "partition.assignment.strategy": "range", "client.id": f"fraud-{self.instance}",
            "session.timeout.ms": s.session_timeout_ms, "heartbeat.interval.ms": max(500, s.session_timeout_ms // 5),
            "fetch.wait.max.ms": 20,  # latency: do not let the broker hold fetches for 500 ms
        }))
        self.producer = self._new_producer()

    def _new_producer(self) -> Producer:
        """A transactional producer; `init_transactions` fences any earlier one with our id and
        aborts the transaction it left open."""
        s = self.settings
        producer = Producer(s.client_config(**{
            "transactional.id": f"fraud-{s.group}-{self.instance}",
            "transaction.timeout.ms": s.transaction_timeout_ms, "enable.idempotence": True,
            "linger.ms": 2, "compression.type": "lz4", "client.id": f"fraud-{self.instance}",
        }))
        try:
            producer.init_transactions(60)
        except KafkaException as exc:
            raise UserError(f"Kafka at {s.bootstrap}: cannot start a transactional producer "
                            f"({exc.args[0].str()})") from None
        return producer

    def _recover_fatal(self, error: KafkaError) -> None:
        """A fenced producer: usually the broker timed our transaction out while it was away (a broker
        restart). A new producer recovers; if fencing keeps happening, another worker runs with our
        transactional id, and we stop rather than fence each other forever."""
        now = time.monotonic()
        self._fatal_times = [t for t in self._fatal_times if now - t < 600] + [now]
        if len(self._fatal_times) > 5:
            raise UserError(f"Kafka transactions keep failing ({error.str()}); is another worker "
                            f"using --instance {self.instance}?")
        self._replace_producer()

    def _replace_producer(self) -> None:
        """Give up on a producer stuck in a call: a new one with the same transactional id fences it
        (its open transaction is aborted), and processing rewinds to the last commit."""
        self._stuck_producers.append(self.producer)  # the stuck call still holds it: never free it
        self.producer = self._new_producer()
        self._rewind()

    def _open_global_tables(self) -> None:
        """Fraud reports: read to the end before the first decision. Merchant table: read lazily,
        each batch waits only until every partition is past what its events need."""
        self.fb_reader = None
        if self.feedback_topic:
            self.fb_reader = GlobalReader(self.settings, self.feedback_topic, "feedback", self.instance,
                                          self._add_report)
        self.merchant_reader = None
        used = set(self.model.features if self.model else ()) | set(self.rules.features if self.rules else ())
        if used & MERCHANT_FEATURES:
            table = self.merchants = MerchantTable(self.cfg.detector.allowed_lateness_ms)
            table.auto_sweep = False  # swept behind the slowest partition of the group instead

            def add(value: bytes | None) -> int | None:
                try:
                    tx = decode(value or b"")
                except BadRecord:
                    return None
                table.add(tx.merchant_id, tx.card_id, tx.ts)
                return tx.ts

            self.merchant_reader = GlobalReader(self.settings, self.input_topic, "merchants", self.instance,
                                                add, self.cfg.detector.allowed_lateness_ms)
        for reader in (self.fb_reader, self.merchant_reader):
            if reader is not None:
                reader.read_to_end()

    def _add_report(self, value: bytes | None) -> int | None:
        """Index one report; its `reported_at` tells the reader how far the feedback topic is read."""
        try:
            rec = orjson.loads(value or b"")
            if isinstance(rec, dict):
                self.feedback.add(rec)
                return parse_time(rec.get("reported_at"), "reported_at")
        except (orjson.JSONDecodeError, BadRecord):
            self.counts["bad_reports"] = self.counts.get("bad_reports", 0) + 1
        return None

    def _sweep_merchants(self) -> None:
        """Drop merchant buckets no partition of the group can still need: behind the oldest event
        time committed on any partition (none dropped while a partition has no commit yet)."""
        reader = self.merchant_reader
        if reader is None or time.monotonic() - self._last_sweep < 60:
            return
        self._last_sweep = time.monotonic()
        try:
            committed = self.consumer.committed([TopicPartition(self.input_topic, p) for p in reader.partitions],
                                                timeout=10)
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

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        committed = consumer.committed(partitions, timeout=30)
        for tp in committed:
            self.tasks[tp.partition] = self._restore(tp)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Every processed record is committed and checkpointed before consume() is called again, so a
        # revoked partition's store is already at its committed offset: nothing to write.
        for tp in partitions:
            task = self.tasks.pop(tp.partition, None)
            if task is not None:
                task.close()

    def _restore(self, tp: TopicPartition) -> PartitionTask:
        """Open the partition's store and bring it to the committed offset without emitting."""
        path = self.state_root / f"{tp.topic}-{tp.partition}"
        task = PartitionTask(tp.topic, tp.partition, path, self._make_detector, self.cfg)
        if tp.offset == OFFSET_INVALID or tp.offset < 0:  # nothing committed: start from the beginning
            low, _ = self.consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            if task.position != low:
                task.reset_empty(low)
            return task
        meta = orjson.loads(tp.metadata) if tp.metadata else {}
        bound = int(meta.get("r", 0))
        if task.position == tp.offset:
            return task
        if task.position is None or task.position > tp.offset or task.position < bound:
            task.reset_empty(bound)
        self._replay(task, tp.offset)
        return task

    def _replay(self, task: PartitionTask, until: int) -> None:
        """Feed [task.position, until) of the input through the detector, emitting nothing."""
        if task.position >= until:
            return
        reader = Consumer(self.settings.client_config(**{
            "group.id": f"{self.settings.group}-replay", "enable.auto.commit": False,
            "isolation.level": "read_committed", "enable.partition.eof": True, "auto.offset.reset": "earliest"}))
        reader.assign([TopicPartition(task.topic, task.partition, task.position)])
        det = task.detector
        part = [TopicPartition(task.topic, task.partition)]
        replayed_before = self.counts["replayed"]
        try:
            while task.position < until:
                txs = []
                marked = task.position // 5000
                for m in reader.consume(1000, timeout=1.0):
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
                    self.counts["replayed"] += 1
                det.run(txs)
                if task.position // 5000 != marked:
                    task.commit_metadata()  # keep the replay bound moving during long replays
                # Offsets may have gaps (transaction markers, compaction): trust the reader's position.
                pos = reader.position(part)[0].offset
                if pos >= until:
                    task.position = until
        finally:
            reader.close()
            if self.metrics:
                self.metrics.replayed.inc(self.counts["replayed"] - replayed_before)
        task.commit_metadata()
        task.checkpoint()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict:
        faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints where a worker is stuck
        self._open_global_tables()
        self._clients()
        self.consumer.subscribe([self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        old = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        idle_since = time.monotonic()
        last_status = 0.0
        try:
            while not self.stopping:
                # Wait for one record, then take whatever else is already fetched: small batches
                # (low latency) when traffic is light, full batches (throughput) under load.
                first = self.consumer.poll(self.settings.commit_interval_ms / 1000)
                msgs = [] if first is None else \
                    [first, *self.consumer.consume(self.settings.batch_max - 1, timeout=0)]
                now = time.monotonic()
                if (self.status or self.metrics) and now - last_status >= 1.0:
                    lag = self._lag()  # one broker round trip a second, for both
                    if self.metrics:
                        self.metrics.lag.set(lag)
                        self.metrics.partitions.set(len(self.tasks))
                    if self.status:
                        self._print_status(lag)
                    last_status = now
                if not msgs:
                    if self.stop_when_idle is not None and now - idle_since >= self.stop_when_idle \
                            and self.tasks and self._lag() == 0:
                        break
                    continue
                idle_since = now
                self._process_batch(msgs)
                self._sweep_merchants()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self._shutdown()
        return self.counts

    def _stop(self, signum, frame) -> None:  # finish the batch, commit, close
        self.stopping = True

    def _process_batch(self, msgs) -> None:
        items = self._decode_batch(msgs)
        newest = max((tx.ts for _, tx, _ in items if not isinstance(tx, BadRecord)), default=None)
        # Global tables first, and before the transaction opens (waiting inside it could outlast its
        # timeout): reports up to the batch's newest event time, merchants up to 7 days before it.
        for reader, need in ((self.fb_reader, newest), (self.merchant_reader, None if newest is None
                                                        else newest - DELAY_MS)):
            if reader is None:
                continue
            reader.poll()
            if need is not None and need > reader.covered:
                reader.wait_for(need, lambda: self.stopping)
                if self.stopping:
                    return  # nothing of this batch was produced or committed: decided after a restart
        producer = self.producer
        touched: dict[int, PartitionTask] = {}
        producer.begin_transaction()
        try:
            batch_counts, batch_latencies = self._produce_batch(items, touched)
        except BufferError:
            self._abort()
            return
        offsets = [TopicPartition(t.topic, t.partition, t.position, metadata=t.commit_metadata())
                   for t in touched.values()]
        try:
            if offsets:
                _with_deadline(producer.send_offsets_to_transaction, offsets,
                               self.consumer.consumer_group_metadata(), 15)
            self._commit()
        except _Stuck:
            self._replace_producer()
            return
        except KafkaException as exc:
            if exc.args[0].fatal():
                self._recover_fatal(exc.args[0])
            else:
                self._abort()
            return
        for t in touched.values():
            t.checkpoint()
        for k, n in batch_counts.items():  # committed: only now do they count
            self.counts[k] += n
        self.latencies.extend(batch_latencies)
        if self.metrics:
            self.metrics.batch_committed(batch_counts, batch_latencies)

    def _decode_batch(self, msgs) -> list:
        """[(message, Transaction or BadRecord, arrival clock)]."""
        clock = time.perf_counter_ns
        items = []
        for m in msgs:
            arrived = clock()
            err = m.error()
            if err is not None:
                if err.fatal():
                    raise KafkaException(err)
                continue
            try:
                items.append((m, decode(m.value()), arrived))
            except BadRecord as exc:
                items.append((m, exc, arrived))
        return items

    def _produce_batch(self, items: list, touched: dict) -> tuple[dict[str, int], list[float]]:
        """Decide the batch and produce its outputs into the open transaction; returns its decision
        counts and latencies, which count once the transaction is committed.

        Each partition's valid transactions go through its detector as one run (one kernel call,
        in arrival order, exactly as one by one); the decisions are then produced in that order.
        """
        producer = self.producer
        clock = time.perf_counter_ns
        out_topic, dlq_topic = self.output_topic, self.dlq_topic
        counts = {"allow": 0, "review": 0, "block": 0, "dead_letters": 0}
        lat: list[float] = []
        runs: dict[int, tuple[list, list]] = {}
        for m, tx, arrived in items:
            task = self.tasks.get(m.partition())
            if task is None:  # revoked in between: another worker owns it now
                continue
            if isinstance(tx, BadRecord):
                reason = mask_text(str(tx))
                key = m.key()
                producer.produce(dlq_topic, key=mask_pans(key) if key else key, headers=[("error", reason.encode())],
                                 value=orjson.dumps({"topic": m.topic(), "partition": m.partition(),
                                                     "offset": m.offset(), "error": reason,
                                                     "record": mask_pans(m.value() or b"").decode("utf-8", "replace")}))
                counts["dead_letters"] += 1
            else:
                txs, times = runs.setdefault(m.partition(), ([], []))
                txs.append(tx)
                times.append(arrived)
            task.after_record(m.offset())
            touched[m.partition()] = task
        for partition, (txs, times) in runs.items():
            det = self.tasks[partition].detector
            for d in det.records(txs, det.run(txs), times, clock):
                producer.produce(out_topic, key=d["card_id"].encode(), value=orjson.dumps(d))
                counts[d["decision"]] += 1
                lat.append(d["latency_ms"])
        return counts, lat

    def _commit(self) -> None:
        for attempt in range(20):
            try:
                _with_deadline(self.producer.commit_transaction, 15)
                return
            except KafkaException as exc:
                if exc.args[0].retriable() and attempt < 19:
                    time.sleep(0.5)
                    continue
                raise

    def _abort(self) -> None:
        """Abort the open transaction (retrying while the broker is away) and rewind."""
        for attempt in range(60):
            try:
                _with_deadline(self.producer.abort_transaction, 15)
                break
            except _Stuck:
                self._replace_producer()
                return
            except KafkaException as exc:
                if exc.args[0].fatal():
                    self._recover_fatal(exc.args[0])
                    return
                if attempt == 59:
                    raise UserError(f"Kafka: cannot abort a transaction ({exc.args[0].str()})") from None
                time.sleep(1.0)
        self._rewind()

    def _rewind(self) -> None:
        """After a failed transaction: every partition back to what Kafka has committed.

        Kafka, not the local checkpoint, is the truth here: a commit whose reply was lost may have
        succeeded, and then its records must not be decided again.
        """
        if self.metrics:
            self.metrics.aborted.inc()
        parts = [TopicPartition(t.topic, t.partition) for t in self.tasks.values()]
        for task in self.tasks.values():
            task.close()  # in-memory changes since the last checkpoint are dropped
        self.tasks.clear()
        for attempt in range(30):
            try:
                committed = self.consumer.committed(parts, timeout=30)
                break
            except KafkaException:
                if attempt == 29:
                    raise
                time.sleep(1.0)
        for tp in committed:
            task = self._restore(tp)
            self.tasks[tp.partition] = task
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, task.position))

    def _lag(self) -> int:
        lag = 0
        for task in self.tasks.values():
            try:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(task.topic, task.partition), timeout=5)
            except KafkaException:
                return 1
            lag += max(0, high - (task.position or 0))
        return lag

    def _print_status(self, lag: int) -> None:
        c = self.counts
        lat = sorted(self.latencies)
        p50 = lat[len(lat) // 2] if lat else 0.0
        p99 = lat[int(len(lat) * 0.99)] if lat else 0.0
        n = c["allow"] + c["review"] + c["block"]
        rate = (n - self._status_n) / max(time.monotonic() - self._status_t, 1e-9)
        self._status_n, self._status_t = n, time.monotonic()
        sys.stderr.write(f"\r{rate:8,.0f} tx/s | decided {n:,} (block {c['block']:,}, review {c['review']:,}) "
                         f"| dead {c['dead_letters']:,} | p50 {p50:.2f} ms p99 {p99:.2f} ms "
                         f"| partitions {sorted(self.tasks)} | lag {lag:,}   ")
        sys.stderr.flush()

    def _shutdown(self) -> None:
        try:
            self.consumer.close()  # leaves the group: its partitions move to the other workers now
            for reader in (self.fb_reader, self.merchant_reader):
                if reader is not None:
                    reader.close()
        finally:
            for task in self.tasks.values():
                task.close()
            self.tasks.clear()
            self.producer.flush(10)
            if self.status:
                sys.stderr.write("\n")
