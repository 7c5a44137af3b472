"""Kafka settings: the `kafka:` section of config/pipeline.yaml, overridden by the environment.

Nothing about the broker lives in code: addresses, topic names, the group and any librdkafka
property (TLS, SASL, timeouts) come from the config file or from `FRAUD_KAFKA_*` variables, so
credentials can stay out of files entirely (`FRAUD_KAFKA_SASL_PASSWORD=...`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from fraud.errors import ConfigError

TOPIC_ROLES = ("transactions", "decisions", "dead_letters", "labels", "feedback")
DEFAULT_TOPICS = {
    "transactions": "transactions",
    "decisions": "decisions",
    "dead_letters": "transactions.dlq",
    "labels": "labels",
    "feedback": "feedback",
}
_KNOWN = {
    "bootstrap",
    "topics",
    "partitions",
    "replication_factor",
    "group",
    "transaction_timeout_ms",
    "batch_max",
    "commit_interval_ms",
    "checkpoint_interval_ms",
    "session_timeout_ms",
    "client",
    "guarantee",
}
GUARANTEES = ("exactly_once", "at_least_once")
ENV_PREFIX = "FRAUD_KAFKA_"
FROM_CONFIG = "config"  # `--kafka config`: the address from kafka.bootstrap or FRAUD_KAFKA_BOOTSTRAP


@dataclass
class KafkaSettings:
    bootstrap: str = "127.0.0.1:9092"
    topics: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    partitions: int = 4
    replication_factor: int = 1
    group: str = "fraud-detector"
    transaction_timeout_ms: int = 10_000
    batch_max: int = 5000
    commit_interval_ms: int = 100
    # A partition's store checkpoints after a commit at most this often: each checkpoint holds the
    # loop while it writes every card changed since the last (5-20 ms at 5,000 tx/s), so a rarer one
    # keeps the latency tail short; a restart replays at most this much of the partition (docs/kafka.md).
    checkpoint_interval_ms: int = 10_000
    session_timeout_ms: int = 10_000  # a worker that died silently loses its partitions after this
    client: dict[str, str] = field(default_factory=dict)  # librdkafka properties, passed through
    guarantee: str = "exactly_once"  # or "at_least_once" (docs/kafka.md, "Delivery guarantees")
    hooks: dict = field(default_factory=dict, repr=False)  # error_cb and logger of every client (a worker's)

    def client_config(self, **extra: object) -> dict:
        """librdkafka configuration: bootstrap + pass-through properties + hooks + the caller's own."""
        return {"bootstrap.servers": self.bootstrap, **self.client, **self.hooks, **extra}


def kafka_settings(
    section: dict, source: str, bootstrap: str | None = None, env: dict[str, str] | None = None
) -> KafkaSettings:
    """Validate the `kafka:` section; environment variables win over the file, arguments over both
    (`bootstrap` = FROM_CONFIG keeps the file's or the environment's address)."""
    env = os.environ if env is None else env
    unknown = set(section) - _KNOWN
    if unknown:
        raise ConfigError(f"{source}: kafka.{sorted(unknown)[0]}: unknown field (known: {', '.join(sorted(_KNOWN))})")
    s = KafkaSettings()
    if "bootstrap" in section:
        if not isinstance(section["bootstrap"], str) or not section["bootstrap"]:
            raise ConfigError(f"{source}: kafka.bootstrap: must be host:port[,host:port...]")
        s.bootstrap = section["bootstrap"]
    topics = section.get("topics", {})
    if not isinstance(topics, dict):
        raise ConfigError(f"{source}: kafka.topics: must be a mapping of role -> topic name")
    for role, name in topics.items():
        if role not in TOPIC_ROLES:
            raise ConfigError(f"{source}: kafka.topics.{role}: unknown role (known: {', '.join(TOPIC_ROLES)})")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: kafka.topics.{role}: must be a topic name")
        s.topics[role] = name
    for key in (
        "partitions",
        "replication_factor",
        "transaction_timeout_ms",
        "batch_max",
        "commit_interval_ms",
        "checkpoint_interval_ms",
        "session_timeout_ms",
    ):
        if key in section:
            v = section[key]
            if type(v) is not int or v < 1:
                raise ConfigError(f"{source}: kafka.{key}: must be a positive integer, got {v!r}")
            setattr(s, key, v)
    if "guarantee" in section:
        s.guarantee = _guarantee(section["guarantee"], f"{source}: kafka.guarantee")
    if "group" in section:
        if not isinstance(section["group"], str) or not section["group"]:
            raise ConfigError(f"{source}: kafka.group: must be a non-empty string")
        s.group = section["group"]
    client = section.get("client", {})
    if not isinstance(client, dict):
        raise ConfigError(f"{source}: kafka.client: must be a mapping of librdkafka properties")
    s.client = {str(k): str(v) for k, v in client.items()}
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if key == "bootstrap":
            s.bootstrap = value
        elif key == "group":
            s.group = value
        elif key == "guarantee":
            s.guarantee = _guarantee(value, f"{name} (environment)")
        else:  # FRAUD_KAFKA_SASL_PASSWORD -> sasl.password
            s.client[key.replace("_", ".")] = value
    if bootstrap and bootstrap != FROM_CONFIG:
        s.bootstrap = bootstrap
    return s


def _guarantee(value: object, where: str) -> str:
    if value not in GUARANTEES:
        raise ConfigError(f"{where}: must be one of {', '.join(GUARANTEES)}, got {value!r}")
    return str(value)
