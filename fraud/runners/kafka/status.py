"""What a worker says while its broker is away (the live status line is `runners/live_view.py`)."""

from __future__ import annotations

import logging
import sys
import time


class BrokerWatch:
    """Says on stderr (terminal or log) when the broker stops answering, every `every` seconds
    while it does not, and when it answers again: a worker waiting for its broker otherwise looks
    like a worker with nothing to do.

    Three signs of trouble: librdkafka's "all brokers down" (a stopped broker; the clients'
    `error_cb` is wired to `on_error`), a worker loop that has not come round for `stall` seconds,
    and a metadata probe of the watch's own client, sent every `stall` seconds anyway, that is not
    answered (a broker that holds its connections and answers nothing: paused, throttled, in a long
    pause; an idle worker would not notice it otherwise). While the broker is down the probe goes
    once a second, until one is answered. The worker's calls retry on their own; nothing here changes
    what is decided or committed."""

    def __init__(self, settings, every: float = 10.0, stall: float = 5.0, out=None) -> None:
        import threading

        from fraud.runners.kafka.admin import quiet_admin

        self._address = settings.bootstrap
        self._probe = quiet_admin(settings)
        self._every, self._stall = every, stall
        self._out = out or sys.stderr
        self.down_since: float | None = None
        self.outages = 0
        self._beat = self._probed = time.monotonic()
        self._said = 0.0
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="broker-watch", daemon=True)
        self._thread.start()

    def hooks(self) -> dict:
        """librdkafka properties for every client of the worker: errors to `on_error`; logs to
        stderr as before, without the connection failures the outage line already says (one
        every 50 ms per client while the broker is away buried that line)."""
        log = logging.getLogger(f"fraud.kafka.{id(self)}")
        log.propagate = False
        log.setLevel(logging.INFO)  # what librdkafka printed before: notices and up
        if not log.handlers:
            handler = logging.StreamHandler(self._out)
            handler.setFormatter(logging.Formatter("%(message)s"))
            handler.addFilter(_not_connection_failures)
            log.addHandler(handler)
        return {"error_cb": self.on_error, "logger": log}

    def beat(self) -> None:
        """The worker's loop came round."""
        self._beat = time.monotonic()

    def on_error(self, err) -> None:
        from confluent_kafka import KafkaError

        if err.code() == KafkaError._ALL_BROKERS_DOWN and self.down_since is None:
            self._down(time.monotonic())

    def _down(self, now: float) -> None:
        self.down_since = now
        self.outages += 1

    def _say(self, text: str) -> None:
        self._out.write(f"\nfraud: {text}\n")
        self._out.flush()

    def _watch(self) -> None:
        from confluent_kafka import KafkaException

        while not self._closed.wait(1.0):
            now = time.monotonic()
            if self.down_since is None and now - self._beat < self._stall and now - self._probed < self._stall:
                continue
            self._probed = now
            try:
                self._probe.list_topics(timeout=2.0)
            except KafkaException:
                now = time.monotonic()
                if self.down_since is None:
                    self._down(now)
                if now - self._said >= self._every:
                    self._said = now
                    self._say(
                        f"the broker at {self._address} does not answer ({now - self.down_since:.0f} s): "
                        "waiting; decisions resume where they stopped, none lost or repeated"
                    )
                continue
            since, self.down_since = self.down_since, None
            if since is not None and self._said >= since:  # the outage was long enough to be announced
                self._say(f"the broker at {self._address} answers again after {time.monotonic() - since:.0f} s")

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)


def _not_connection_failures(record: logging.LogRecord) -> bool:
    """librdkafka logs as log(level, "%s [%s] %s", facility, client, message)."""
    return not (record.args and record.args[0] == "FAIL")


def show_status(runner) -> None:
    """A worker's status line (`live_view.StatusLine`) and gauges, once a second: the slowest of its
    partitions' watermarks, its partitions and their lag (one broker round trip, for both)."""
    from fraud.runners.kafka.admin import partition_lag

    lag = partition_lag(runner.consumer, runner.tasks.values())
    marks = [t.detector.watermark for t in runner.tasks.values() if t.detector.watermark is not None]
    watermark = min(marks, default=None)
    if runner.metrics:
        runner.metrics.lag.set(lag)
        runner.metrics.partitions.set(len(runner.tasks))
        runner.metrics.set_watermark(watermark)
    rules = {k[5:]: n for k, n in runner.counts.items() if k.startswith("rule:")}
    extra = f"partitions {sorted(runner.tasks)} | lag {lag:,}"
    runner.status.show(runner.counts, runner.latencies, watermark, rules, extra)
