"""Broker checks and topic management for the Kafka commands.

Every failure the user can fix (broker down, wrong address, missing rights) surfaces as a one-line
`UserError`, never as a librdkafka traceback or a stream of connection logs on stderr.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from fraud.errors import UserError
from fraud.settings.kafka import KafkaSettings

# Quiet clients: librdkafka logs nothing (level 0 = emergencies only), connection closes are not
# reported, and asynchronous errors ("all brokers down") are swallowed; the calls' own results and
# exceptions carry what we need.
_QUIET = {"log_level": 0, "log.connection.close": False, "error_cb": lambda _err: None}


def quiet_admin(settings: KafkaSettings, **extra: object) -> AdminClient:
    return AdminClient(settings.client_config(**{**_QUIET, **extra}))


def _reason(exc: BaseException) -> str:
    err = exc.args[0] if exc.args else None
    text = err.str() if isinstance(err, KafkaError) else str(exc)
    return " ".join(text.split())  # one line


class Unreachable(UserError):
    """No broker answered (as opposed to a client configuration that cannot work at all)."""


def check_reachable(settings: KafkaSettings, timeout: float = 10.0) -> None:
    """Raise UserError unless a broker at settings.bootstrap answers a metadata request within timeout."""
    start = time.monotonic()
    try:  # librdkafka checks every property when the client is made, before any connection
        admin = quiet_admin(settings, **{"socket.connection.setup.timeout.ms": max(1000, int(timeout * 1000))})
    except (KafkaException, ValueError, TypeError) as exc:
        raise UserError(
            f"Kafka client configuration is invalid (kafka.client in the pipeline config, or "
            f"FRAUD_KAFKA_* variables): {_reason(exc)}"
        ) from None
    try:
        md = admin.list_topics(timeout=max(0.1, timeout))
    except KafkaException as exc:
        raise Unreachable(
            f"Kafka broker at {settings.bootstrap} is unreachable (no answer within {timeout:g}s: {_reason(exc)})"
        ) from None
    if not md.brokers:
        raise Unreachable(
            f"Kafka broker at {settings.bootstrap} is unreachable "
            f"(metadata without brokers after {time.monotonic() - start:.1f}s)"
        )


def wait_reachable(
    settings: KafkaSettings, stopping: Callable[[], bool], say: Callable[[str], None], max_backoff_s: float = 30.0
) -> bool:
    """Wait for the broker, retrying with a doubling backoff (1 s up to `max_backoff_s`); False if
    `stopping()` came first. One line when it starts waiting and one when the broker answers; an
    invalid client configuration is raised at once (waiting cannot fix it)."""
    backoff = 1.0
    waiting_since = None
    while True:
        try:
            check_reachable(settings, timeout=5.0)
            if waiting_since is not None:
                say(f"Kafka at {settings.bootstrap} answered after {time.monotonic() - waiting_since:.0f}s")
            return True
        except Unreachable as exc:
            if waiting_since is None:
                waiting_since = time.monotonic()
                say(f"{exc}; retrying with backoff up to {max_backoff_s:g}s (SIGTERM or Ctrl-C to stop)")
        until = time.monotonic() + backoff
        while time.monotonic() < until:
            if stopping():
                return False
            time.sleep(0.1)
        backoff = min(2 * backoff, max_backoff_s)


def topic_partitions(settings: KafkaSettings, topic: str, timeout: float = 10.0) -> int:
    """Partition count of `topic`; 0 when the topic does not exist."""
    try:
        # All topics, not list_topics(topic=...): a request naming a missing topic makes a broker
        # with auto.create.topics.enable=true create it.
        md = quiet_admin(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise UserError(
            f"Kafka broker at {settings.bootstrap}: cannot read metadata of topic {topic!r}: {_reason(exc)}"
        ) from None
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        return 0
    return len(t.partitions)


def ensure_topics(
    settings: KafkaSettings,
    names: dict[str, int] | list[str] | tuple[str, ...],
    partitions: int | None = None,
    config: dict | None = None,
    timeout: float = 30.0,
) -> None:
    """Create the missing topics and wait until every one is usable.

    `names` is a list of topic names (each with `partitions`, default settings.partitions) or a
    mapping name -> partitions. Replication is settings.replication_factor; `config` holds topic
    configs (e.g. {"retention.ms": "86400000"}). Idempotent: existing topics are left as they are
    (their partition count is not changed), and a concurrent creation (TOPIC_ALREADY_EXISTS) is fine.
    Returns once each topic is in the metadata with a leader for every partition, and topics created
    here with the requested partition count.
    """
    default = settings.partitions if partitions is None else partitions
    wanted = dict(names) if isinstance(names, dict) else {n: default for n in names}
    for name, n in wanted.items():
        if not isinstance(name, str) or not name:
            raise UserError(f"invalid Kafka topic name {name!r}")
        if type(n) is not int or n < 1:
            raise UserError(f"topic {name}: partitions must be a positive integer, got {n!r}")
    if not wanted:
        return
    deadline = time.monotonic() + timeout
    admin = quiet_admin(settings)
    try:
        existing = admin.list_topics(timeout=min(10.0, timeout)).topics
    except KafkaException as exc:
        raise UserError(f"Kafka broker at {settings.bootstrap} is unreachable ({_reason(exc)})") from None
    missing = [name for name in wanted if name not in existing or existing[name].error is not None]
    expect: dict[str, int | None] = {name: None for name in wanted}  # None: any partition count
    if missing:
        new = [
            NewTopic(
                name,
                num_partitions=wanted[name],
                replication_factor=settings.replication_factor,
                config={str(k): str(v) for k, v in (config or {}).items()},
            )
            for name in missing
        ]
        futures = admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout)
        for name, fut in futures.items():
            try:
                fut.result(timeout=max(1.0, deadline - time.monotonic()))
                expect[name] = wanted[name]
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue
                raise UserError(f"cannot create Kafka topic {name!r} on {settings.bootstrap}: {_reason(exc)}") from None
    _wait_visible(admin, settings, expect, deadline, timeout)


def delete_topics(settings: KafkaSettings, names: list[str], timeout: float = 30.0) -> None:
    """Delete topics of our own making (a benchmark's); a failure only leaves them behind."""
    futures = quiet_admin(settings).delete_topics(names, operation_timeout=timeout, request_timeout=timeout)
    for fut in futures.values():
        try:
            fut.result(timeout=timeout)
        except KafkaException:
            pass


def _wait_visible(
    admin: AdminClient, settings: KafkaSettings, expect: dict[str, int | None], deadline: float, timeout: float
) -> None:
    pending = dict(expect)
    while True:
        try:
            md = admin.list_topics(timeout=max(0.5, min(5.0, deadline - time.monotonic()))).topics
        except KafkaException:
            md = {}
        for name in list(pending):
            t = md.get(name)
            if (
                t is not None
                and t.error is None
                and t.partitions
                and (pending[name] is None or len(t.partitions) == pending[name])
                and all(p.leader >= 0 for p in t.partitions.values())
            ):
                del pending[name]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise UserError(
                f"Kafka topics {', '.join(sorted(pending))} on {settings.bootstrap} are not "
                f"ready (metadata with leaders for all partitions) after {timeout:g}s"
            )
        time.sleep(0.1)


def wait_group_assigned(
    settings: KafkaSettings, group: str, topic: str, partitions: int, timeout: float = 120.0
) -> float:
    """Wait until consumer group `group` is stable with all `partitions` of `topic` assigned; returns
    the seconds waited. For measurements that must not count a worker's start-up as latency."""
    admin = quiet_admin(settings)
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            desc = admin.describe_consumer_groups([group], request_timeout=5)[group].result()
            assigned = {tp.partition for m in desc.members for tp in m.assignment.topic_partitions if tp.topic == topic}
            if desc.state.name == "STABLE" and len(assigned) == partitions:
                return time.monotonic() - start
        except KafkaException:
            pass  # the group does not exist yet
        time.sleep(0.2)
    raise UserError(
        f"consumer group {group!r} on {settings.bootstrap} did not get {topic!r} assigned within {timeout:g}s"
    )


def group_drained(consumer: Consumer, topic: str) -> bool:
    """The consumer's group has committed every partition of `topic` to its end (high watermark; an
    empty partition counts as drained). The worker asks this only once it has partitions: one
    without any (before its first assignment, during a rebalance, or while a dead member still holds
    some) is waiting, not idle."""
    try:
        meta = consumer.list_topics(topic, timeout=5).topics[topic]
        parts = [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        for tp in consumer.committed(parts, timeout=10):
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=5)
            if high > low and tp.offset < high:  # OFFSET_INVALID (nothing committed) is negative
                return False
    except KafkaException:
        return False
    return True


def partition_lag(consumer: Consumer, tasks: Iterable) -> int:
    """Records between each task's position and its partition's end (1 if the broker does not answer)."""
    lag = 0
    for task in tasks:
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(task.topic, task.partition), timeout=5)
        except KafkaException:
            return 1
        lag += max(0, high - (task.position or 0))
    return lag
