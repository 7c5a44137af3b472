"""Shared fixtures: small simulated streams, made once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAUD = str(Path(sys.executable).with_name("fraud"))


@pytest.fixture(autouse=True)
def _default_record_limits():
    """Record limits are process-wide (`records.use_limits`, set by `load_config`): each test starts
    and ends with the defaults."""
    from fraud.core.records import Limits, use_limits

    use_limits(Limits())
    yield
    use_limits(Limits())


@pytest.fixture(scope="session")
def small_stream(tmp_path_factory) -> dict[str, Path]:
    """A seeded simulator stream: 400 cards x 14 days, with late arrivals, labels and feedback."""
    from generator.simulate import SimConfig, write_files

    d = tmp_path_factory.mktemp("stream")
    paths = {"tx": d / "tx.jsonl", "labels": d / "labels.jsonl", "feedback": d / "feedback.jsonl"}
    write_files(
        SimConfig(cards=400, days=14, seed=11, late_share=0.05),
        str(paths["tx"]),
        str(paths["labels"]),
        str(paths["feedback"]),
    )
    return paths


def with_retries(lines: list[bytes], every: int = 250) -> tuple[list[bytes], set[str]]:
    """`lines` with a copy of every `every`-th transaction sent again (an upstream retry): half of
    the copies right after the first, half some hundreds of lines later. Returns the new lines and
    the tx_ids retried. Deterministic."""
    out = list(lines)
    retried: set[str] = set()
    inserts: list[tuple[int, bytes]] = []
    for n, line in enumerate(lines):
        if n % every == every // 2 and line.startswith(b"{") and b'"tx_id"' in line:
            import orjson

            retried.add(orjson.loads(line)["tx_id"])
            later = 1 if len(retried) % 2 else 1 + (n * 7919) % 600
            inserts.append((n + later, line))
    for at, line in sorted(inserts, key=lambda p: p[0], reverse=True):
        out.insert(min(at, len(out)), line)
    return out, retried
