"""The detector as a Kafka consumer-group member, exactly-once: the poll loop.

Per batch: one Kafka transaction holds the decisions, the dead letters and the consumed offsets
(`send_offsets_to_transaction`), so `read_committed` readers see each decision once. Each assigned
partition has its own `Detector` and RocksDB store (`restore.py`); right after a commit, when
`kafka.checkpoint_interval_ms` has passed, the store checkpoints the state that matches the committed
offset (a restart replays the short gap from Kafka). The parts, one job each:

* `transactions.py`: the transactional producer and every way a transaction fails;
* `restore.py`: a partition's task, and its state brought to the committed offset on assignment;
* `global_tables.py`: the fraud reports and the merchant table, read whole by every worker;
* `batch.py`: a batch decoded, decided and produced;
* `status.py`: the live status line, and what the worker says while the broker is away.
"""

from __future__ import annotations

import faulthandler
import signal
import socket
import sys
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from confluent_kafka import Consumer, TopicPartition

from fraud.core.detector import Detector
from fraud.core.records import BadRecord
from fraud.runners.kafka.admin import group_drained
from fraud.runners.kafka.batch import decode_batch, produce_batch
from fraud.runners.kafka.global_tables import GlobalTables
from fraud.runners.kafka.restore import PartitionTask, Restorer, checkpoints_due, committed_offsets
from fraud.runners.kafka.status import BrokerWatch, show_status
from fraud.runners.kafka.transactions import AtLeastOnce, Transactions
from fraud.runners.live_view import StatusLine
from fraud.runners.pauses import settle
from fraud.scoring.model import FastModel
from fraud.scoring.rules import RuleSet
from fraud.settings.kafka import KafkaSettings
from fraud.settings.pipeline import PipelineConfig
from fraud.state.store import StateStore

if TYPE_CHECKING:
    from fraud.runners.metrics import WorkerMetrics
    from fraud.scoring.rules_watch import RulesWatch


class KafkaRunner:
    """One worker of the consumer group: `run()` decides until stopped (SIGTERM/SIGINT, or idle)."""

    def __init__(
        self,
        settings: KafkaSettings,
        cfg: PipelineConfig,
        rules: RuleSet | None,
        model: FastModel | None,
        state_root: str | Path,
        instance: str | None = None,
        input_topic: str | None = None,
        output_topic: str | None = None,
        stop_when_idle: float | None = None,
        status: bool | None = None,
        feedback_topic: str | None = None,
    ) -> None:
        self.broker = BrokerWatch(settings)  # says when the broker stops answering, and when it is back
        self.settings = settings = replace(settings, hooks=self.broker.hooks())
        self.cfg = cfg
        self.rules, self.model = rules, model
        self.instance = instance or socket.gethostname()
        self.input_topic = input_topic or settings.topics["transactions"]
        self.output_topic = output_topic or settings.topics["decisions"]
        self.dlq_topic = settings.topics["dead_letters"]
        self.feedback_topic = feedback_topic
        self.stop_when_idle = stop_when_idle
        self.status = StatusLine(sys.stderr.isatty() if status is None else status)
        self.metrics: WorkerMetrics | None = None  # set by the CLI with --metrics-port
        self.rules_watch: RulesWatch | None = None  # set by the CLI: the rules file, checked every batch
        self.shadow: FastModel | None = None  # set by the CLI with --shadow-model
        self.restorer = Restorer(settings, cfg, Path(state_root) / settings.group / self.instance, self._make_detector)
        self.tasks: dict[int, PartitionTask] = {}
        self.tables: GlobalTables | None = None  # opened by run(): reading them takes a while
        self.consumer: Consumer | None = None
        self.exactly_once = settings.guarantee == "exactly_once"
        self.transactions: Transactions | AtLeastOnce | None = None
        self._rebalances = 0  # assignments and revocations seen (`_committed`)
        self.stopping = False
        self.counts = {"allow": 0, "review": 0, "block": 0, "dead_letters": 0, "replayed": 0}
        # produced, not yet committed (at-least-once commits every commit_interval_ms; exactly-once every batch)
        self._touched: dict[int, PartitionTask] = {}
        self._uncommitted: dict[str, int] = {}
        self._uncommitted_latencies: list[float] = []
        self._last_commit = 0.0
        self.latencies: deque[float] = deque(maxlen=20_000)  # recent ones: memory stays flat

    def _make_detector(self, store: StateStore) -> Detector:
        det = Detector(
            store, self.rules, self.model, self.cfg.detector, feedback=self.tables.feedback, shadow=self.shadow
        )
        if self.tables.merchants is not None:
            det.use_merchant_table(self.tables.merchants)
        return det

    def _use_rules(self, rules: RuleSet) -> None:
        """New rules for every partition from this batch on, and for partitions assigned later."""
        self.rules = rules
        for task in self.tasks.values():
            task.detector.set_rules(rules)

    def _new_consumer(self) -> Consumer:
        return Consumer(consumer_config(self.settings, self.instance))

    # -- assignment ----------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._rebalances += 1
        for tp in consumer.committed(partitions, timeout=30):
            self.tasks[tp.partition] = self._restore(tp)
        self._share_decodes()
        settle()  # the restored stores frozen too, the revoked ones' garbage collected

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # What was produced and not yet committed (at-least-once) is committed first, as Kafka Streams
        # does on revocation; then every revoked partition's store is at its committed offset.
        self._rebalances += 1
        self._commit(checkpoint_all=True)
        for tp in partitions:
            task = self.tasks.pop(tp.partition, None)
            if task is not None:
                task.close()
        self._share_decodes()

    def _share_decodes(self) -> None:
        """Tell the shared decodes which partitions this worker reads now, and from where."""
        if self.tables.decodes is not None:  # set by run() before any assignment
            self.tables.decodes.assigned({p: t.position for p, t in self.tasks.items()})

    def _restore(self, tp: TopicPartition) -> PartitionTask:
        before = self.restorer.replayed
        task = self.restorer.restore(tp, self.consumer)
        self.counts["replayed"] = self.restorer.replayed
        if self.metrics:
            self.metrics.replayed.inc(self.restorer.replayed - before)
        return task

    def _rewind(self) -> None:
        """After a lost transaction: every partition back to what Kafka has committed.

        Kafka, not the local checkpoint, is the truth here: a commit whose reply was lost may have
        succeeded, and then its records must not be decided again.
        """
        if self.metrics:
            self.metrics.aborted.inc()
        self._touched.clear()  # decided again from Kafka's committed offsets
        self._uncommitted, self._uncommitted_latencies = {}, []
        parts = [TopicPartition(t.topic, t.partition) for t in self.tasks.values()]
        for task in self.tasks.values():
            task.close()  # in-memory changes since the last checkpoint are dropped
        self.tasks.clear()
        seen = self._rebalances
        committed = committed_offsets(self.consumer, parts, lambda: self._rebalances != seen)
        if committed is None:
            return  # the group rebalanced meanwhile: `_on_assign` restored the partitions from Kafka
        for tp in committed:
            task = self._restore(tp)
            self.tasks[tp.partition] = task
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, task.position))
        self._share_decodes()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> dict:
        faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints where a worker is stuck
        features = {f for part in (self.model, self.rules, self.shadow) if part is not None for f in part.features}
        self.tables = GlobalTables(
            self.settings,
            self.input_topic,
            self.feedback_topic,
            self.instance,
            features,
            self.cfg.detector.allowed_lateness_ms,
        )
        self.tables.read_to_end()  # before joining the group: a long read must not stall a rebalance
        settle()  # start-up objects out of the garbage collector's way (`pauses.py`)
        self.consumer = self._new_consumer()
        if self.exactly_once:
            self.transactions = Transactions(self.settings, self.instance, self._rewind)
        else:
            self.transactions = AtLeastOnce(self.settings, self.instance, self._rewind, self.consumer)
        self.consumer.subscribe([self.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        old = {sig: signal.signal(sig, self._stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        idle_since = time.monotonic()
        last_drain_check = 0.0
        try:
            while not self.stopping:
                # Wait for one record, then take whatever else is already fetched: small batches
                # (low latency) when traffic is light, full batches (throughput) under load.
                self.broker.beat()
                first = self.consumer.poll(self.settings.commit_interval_ms / 1000)
                msgs = [] if first is None else [first, *self.consumer.consume(self.settings.batch_max - 1, timeout=0)]
                now = time.monotonic()
                if (self.status.enabled or self.metrics) and self.status.due():
                    show_status(self)
                if not msgs:
                    self._commit()  # nothing more came within a commit interval: commit what is pending
                    if self.stop_when_idle is not None and now - idle_since >= self.stop_when_idle:
                        if now - last_drain_check >= 1.0:  # broker round trips: once a second at most
                            last_drain_check = now
                            if self.tasks and group_drained(self.consumer, self.input_topic):
                                break
                    continue
                idle_since = now
                if self.rules_watch is not None and self.rules_watch.poll():
                    self._use_rules(self.rules_watch.rules)
                self._process_batch(msgs)
                self.tables.sweep(self.consumer)
            self._commit(checkpoint_all=True)  # stopped: what was produced is committed before leaving
        except BaseException:
            self._touched.clear()  # a batch cut short is never committed, not even by the revocation on close
            raise
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)
            self._shutdown()
        if self.tables.bad_reports:
            self.counts["bad_reports"] = self.tables.bad_reports
        return self.counts

    def _stop(self, signum, frame) -> None:  # finish the batch, commit, close
        self.stopping = True

    def _process_batch(self, msgs) -> None:
        """Decide a batch and produce its outputs. Exactly-once: one transaction, committed now. At-least-once:
        produced now, committed with the batches since the last commit once `commit_interval_ms` has passed."""
        items = decode_batch(msgs, self.tables.decodes)
        newest = max((tx.ts for _, tx, _ in items if not isinstance(tx, BadRecord)), default=None)
        # Global tables first, and before the transaction opens (waiting inside it could outlast its
        # timeout). A stop while waiting: nothing of this batch was produced or committed.
        if not self.tables.ready_for(newest, lambda: self.stopping):
            return
        producer = self.transactions.begin()
        try:
            batch_counts, batch_latencies = produce_batch(
                self.tasks, self.output_topic, self.dlq_topic, self.exactly_once, producer, items, self._touched
            )
        except BufferError:
            self.transactions.abort()
            self._touched.clear()
            return
        for k, n in batch_counts.items():
            self._uncommitted[k] = self._uncommitted.get(k, 0) + n
        self._uncommitted_latencies.extend(batch_latencies)
        if self.exactly_once:
            self._commit(in_transaction=True)
        elif time.monotonic() - self._last_commit >= self.settings.commit_interval_ms / 1000:
            self._commit()
        else:
            producer.poll(0)  # delivery reports; nothing waits on them until the commit

    def _commit(self, in_transaction: bool = False, checkpoint_all: bool = False) -> None:
        """Commit what was produced since the last commit (offsets with it: one transaction, or after
        delivery); then every partition is at its committed offset, and the most overdue checkpoint
        is taken there (every due one with `checkpoint_all`: on revocation and on leaving). An open
        transaction is committed even when it touched nothing (its partitions were revoked meanwhile)."""
        touched = self._touched
        self._last_commit = time.monotonic()
        if touched or in_transaction:
            offsets = [
                TopicPartition(t.topic, t.partition, t.position, metadata=t.commit_metadata()) for t in touched.values()
            ]
            counts, latencies = self._uncommitted, self._uncommitted_latencies
            self._touched, self._uncommitted, self._uncommitted_latencies = {}, {}, []
            if not self.transactions.commit(offsets, self.consumer.consumer_group_metadata()):
                return  # lost: the partitions were rewound to Kafka's committed offsets
            for k, n in counts.items():  # committed: only now do they count
                self.counts[k] = self.counts.get(k, 0) + n
            self.latencies.extend(latencies)
            if self.metrics:
                self.metrics.batch_committed(counts, latencies)
        for t in checkpoints_due(self.tasks.values(), checkpoint_all):
            t.checkpoint()

    def _shutdown(self) -> None:
        try:
            if self.consumer is not None:
                self.consumer.close()  # leaves the group: its partitions move to the other workers now
            if self.tables is not None:
                self.tables.close()
        finally:
            for task in self.tasks.values():
                task.close()
            self.tasks.clear()
            if self.transactions is not None:
                self.transactions.flush(10)
            self.status.close()
            self.broker.close()


def consumer_config(s: KafkaSettings, instance: str) -> dict:
    """The worker's group consumer: offsets committed by its transactions, committed reads only."""
    return s.client_config(
        **{
            "group.id": s.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "partition.assignment.strategy": "range",
            "client.id": f"fraud-{instance}",
            "session.timeout.ms": s.session_timeout_ms,
            "heartbeat.interval.ms": max(500, s.session_timeout_ms // 5),
            "fetch.wait.max.ms": 20,  # latency: do not let the broker hold fetches for 500 ms
        }
    )
