"""Streams shared by the Kafka integration tests, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.kafka_helpers import _with_malformed, embedded_reference, with_retries


@pytest.fixture(scope="session")
def sim_stream(tmp_path_factory) -> Path:
    """Our simulator (late and out-of-order arrivals, locations, channels) + 10 malformed lines."""
    from generator.simulate import SimConfig, write_files

    d = tmp_path_factory.mktemp("simstream")
    write_files(
        SimConfig(cards=400, days=12, seed=21, late_share=0.05), str(d / "clean.jsonl"), str(d / "labels.jsonl")
    )
    return _with_malformed(open(d / "clean.jsonl", "rb").read().splitlines(), d / "tx.jsonl")


@pytest.fixture(scope="session")
def stream(tmp_path_factory) -> Path:
    """40,000+ transactions of an independent (foreign) simulator, 160 of them sent twice (upstream
    retries: some right after the first, some later, so some after a crash and restart), and 10
    malformed lines."""
    import foreign_sim

    d = tmp_path_factory.mktemp("foreign")
    n = foreign_sim.write(
        str(d / "clean.jsonl"), str(d / "labels.jsonl"), n_customers=400, n_terminals=800, days=55, seed=4
    )
    lines = open(d / "clean.jsonl", "rb").read().splitlines()
    assert len(lines) >= 40_000, n
    lines, retried = with_retries(lines)
    assert len(retried) >= 160
    return _with_malformed(lines, d / "tx.jsonl")


@pytest.fixture(scope="session")
def reference(stream, tmp_path_factory) -> dict[str, tuple]:
    return embedded_reference(stream, tmp_path_factory.mktemp("ref"))
