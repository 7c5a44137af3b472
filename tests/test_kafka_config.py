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
