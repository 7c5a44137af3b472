"""Kafka settings come from the config file and the environment, the command line winning; a bad
client property is a configuration error, not an unreachable broker. No broker needed."""

from __future__ import annotations

import pytest

from fraud.errors import ConfigError, UserError
from fraud.runners.kafka.admin import check_reachable
from fraud.settings.kafka import FROM_CONFIG, kafka_settings


def test_bootstrap_from_file_environment_and_command_line():
    section = {"bootstrap": "file:9092", "client": {"security.protocol": "SSL"}}
    assert kafka_settings(section, "p.yaml", env={}).bootstrap == "file:9092"
    env = {"FRAUD_KAFKA_BOOTSTRAP": "env:9092", "FRAUD_KAFKA_SASL_PASSWORD": "s3cret", "FRAUD_KAFKA_GROUP": "g2"}
    s = kafka_settings(section, "p.yaml", bootstrap=FROM_CONFIG, env=env)
    assert (s.bootstrap, s.group) == ("env:9092", "g2")
    assert s.client == {"security.protocol": "SSL", "sasl.password": "s3cret"}
    assert kafka_settings(section, "p.yaml", bootstrap="cli:9092", env=env).bootstrap == "cli:9092"


def test_unknown_field_names_file_and_field():
    with pytest.raises(ConfigError, match=r"p\.yaml: kafka\.bootstarp: unknown field"):
        kafka_settings({"bootstarp": "x:1"}, "p.yaml", env={})


@pytest.mark.parametrize("client", [{"security.protocol": "bogus"}, {"not.a.property": "1"}])
def test_bad_client_property_is_a_configuration_error(client):
    s = kafka_settings({"client": client}, "p.yaml", bootstrap="127.0.0.1:1", env={})
    with pytest.raises(UserError) as info:
        check_reachable(s, timeout=1.0)
    assert "configuration is invalid" in str(info.value) and "unreachable" not in str(info.value)


def test_guarantee_is_one_of_two_and_the_environment_wins():
    from fraud.errors import ConfigError
    from fraud.settings.kafka import kafka_settings

    assert kafka_settings({}, "p.yaml", env={}).guarantee == "exactly_once"
    assert kafka_settings({"guarantee": "at_least_once"}, "p.yaml", env={}).guarantee == "at_least_once"
    env = {"FRAUD_KAFKA_GUARANTEE": "at_least_once"}
    assert kafka_settings({"guarantee": "exactly_once"}, "p.yaml", env=env).guarantee == "at_least_once"
    with pytest.raises(ConfigError, match=r"p.yaml: kafka.guarantee: must be one of exactly_once, at_least_once"):
        kafka_settings({"guarantee": "exactly-once"}, "p.yaml", env={})


def test_checkpoint_interval_is_a_kafka_setting_named_when_wrong():
    assert kafka_settings({}, "p.yaml", env={}).checkpoint_interval_ms == 10_000
    assert kafka_settings({"checkpoint_interval_ms": 250}, "p.yaml", env={}).checkpoint_interval_ms == 250
    with pytest.raises(ConfigError, match=r"p\.yaml: kafka\.checkpoint_interval_ms: must be a positive integer"):
        kafka_settings({"checkpoint_interval_ms": "10s"}, "p.yaml", env={})


def test_one_overdue_store_checkpoints_per_commit_all_when_forced(tmp_path):
    """Partitions assigned together fall due together; a commit checkpoints only the most overdue one
    (the others in the next commits), a revocation or a stop every one that moved."""
    from fraud.core.detector import Detector
    from fraud.runners.kafka.restore import PartitionTask, checkpoints_due
    from fraud.settings.pipeline import PipelineConfig

    tasks = [PartitionTask("t", p, tmp_path / str(p), Detector, PipelineConfig(), 0) for p in range(3)]
    try:
        for n, task in enumerate(tasks):
            if n != 1:  # partition 1 has not moved: nothing to write
                task.after_record(10)
            task.checkpointed_at -= n  # partition 2 has waited longest
        assert checkpoints_due(tasks) == [tasks[2]]
        assert checkpoints_due(tasks, force=True) == [tasks[0], tasks[2]]
        tasks[2].checkpoint()
        assert checkpoints_due(tasks) == [tasks[0]]
        slow = PartitionTask("t", 9, tmp_path / "9", Detector, PipelineConfig(), 60_000)
        slow.after_record(10)
        assert checkpoints_due([slow]) == [] and checkpoints_due([slow], force=True) == [slow]
        slow.close()
    finally:
        for task in tasks:
            task.close()
