"""Prometheus metrics of a running detector (`fraud detect ... --metrics-port P`, embedded or Kafka).

What an operator alerts on: decisions by kind, dead letters, decision latency, rules fired, the
watermark; on Kafka also consumer lag, aborted transactions, state replays. Updated once per
committed batch (Kafka: only what Kafka committed; an aborted batch is decided again, not counted
twice) or once a second (embedded), never per event on the hot path. prometheus_client serves them
from its own thread on `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from fraud.errors import UserError

# decision latency in seconds: from a record's arrival in the worker to its decision
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


class WorkerMetrics:
    """One detector's metrics in a registry of its own (no global state: tests may start several)."""

    def __init__(self, port: int, host: str = "127.0.0.1", instance: str = "", kafka: bool = True) -> None:
        reg = self.registry = CollectorRegistry()
        self.decisions = Counter("fraud_decisions", "committed decisions by kind", ["decision"], registry=reg)
        self.dead_letters = Counter("fraud_dead_letters", "bad records sent to the dead-letter topic", registry=reg)
        self.latency = Histogram(
            "fraud_decision_latency_seconds",
            "record arrival in the worker to its decision",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.rules = Counter("fraud_rules_fired", "decisions on which each rule fired", ["rule"], registry=reg)
        self.watermark = Gauge(
            "fraud_watermark_timestamp_seconds",
            "event time of the watermark (Kafka: the slowest partition's); lag = time() - this",
            registry=reg,
        )
        Gauge("fraud_worker_info", "this detector", ["instance", "mode"], registry=reg).labels(
            instance, "kafka" if kafka else "embedded"
        ).set(1)
        for kind in ("allow", "review", "block"):
            self.decisions.labels(kind)  # exported at 0 from the start, so rates are defined
        if kafka:
            self._kafka(reg)
        try:
            self._server, _ = start_http_server(port, addr=host, registry=reg)
        except OSError as exc:
            raise UserError(f"--metrics-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None

    def _kafka(self, reg: CollectorRegistry) -> None:
        self.aborted = Counter(
            "fraud_kafka_transactions_aborted",
            "Kafka transactions aborted or abandoned (their batch is decided again)",
            registry=reg,
        )
        self.committed = Counter("fraud_kafka_transactions_committed", "Kafka transactions committed", registry=reg)
        self.replayed = Counter(
            "fraud_replayed_records",
            "input records replayed, emitting nothing, to rebuild partition state",
            registry=reg,
        )
        self.lag = Gauge("fraud_consumer_lag", "records behind the end of the assigned partitions", registry=reg)
        self.partitions = Gauge("fraud_assigned_partitions", "input partitions this worker owns", registry=reg)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def batch_committed(self, counts: dict[str, int], latencies_ms: list[float]) -> None:
        self.committed.inc()
        self.decided(counts, latencies_ms)

    def set_watermark(self, watermark_ms: int | None) -> None:
        if watermark_ms is not None:
            self.watermark.set(watermark_ms / 1000.0)

    def decided(self, counts: dict[str, int], latencies_ms: list[float]) -> None:
        """Decisions since the last call: by kind, dead letters, `rule:<name>` counts, latencies."""
        for k, n in counts.items():
            if k.startswith("rule:"):
                self.rules.labels(k[5:]).inc(n)
        for kind in ("allow", "review", "block"):
            if counts.get(kind):
                self.decisions.labels(kind).inc(counts[kind])
        if counts.get("dead_letters"):
            self.dead_letters.inc(counts["dead_letters"])
        observe = self.latency.observe
        for ms in latencies_ms:
            observe(ms / 1000.0)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
