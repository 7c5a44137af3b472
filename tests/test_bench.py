"""`fraud bench`'s table: what it measures, not how fast (benchmarks print figures, tests never time)."""

from fraud.core.detector import DetectorSettings
from fraud.offline.bench import format_bench, run_bench
from fraud.scoring.model import load_model
from fraud.scoring.rules import load_rules
from fraud.settings.pipeline import DEFAULT_MODEL, DEFAULT_RULES


def test_bench_rows_and_baseline(small_stream):
    rows = run_bench(
        str(small_stream["tx"]),
        load_rules(DEFAULT_RULES),
        load_model(DEFAULT_MODEL),
        DetectorSettings(),
        checkpoint_every=1000,
        feedback_path=str(small_stream["feedback"]),
    )
    assert [r["pipeline"].split(" (")[0] for r in rows] == [
        "passthrough",
        "detector, rules only",
        "detector, rules + model + fraud reports",
    ]
    base = rows[0]
    # the baseline is the median of a passthrough before, between and after the detector rows
    assert len(base["runs_tx_per_s"]) == 3 and base["tx_per_s"] == sorted(base["runs_tx_per_s"])[1]
    assert base["vs_passthrough"] == 1.0
    for r in rows:
        assert r["tx_per_s"] > 0 and r["p50"] <= r["p99"] <= r["p99.9"] and r["peak_rss_mb"] > 0
        assert r["vs_passthrough"] == r["tx_per_s"] / base["tx_per_s"]
    text = format_bench(rows, 100)
    assert "median of 3" in text and "rules + model + fraud reports" in text
