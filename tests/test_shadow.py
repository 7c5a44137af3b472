"""Champion and challenger: `fraud detect --shadow-model DIR` scores every transaction with a second
model (`shadow_score`) and changes no decision; `fraud evaluate` compares the two models."""

from __future__ import annotations

import json
import shutil

import numpy as np
import orjson
import pytest
from sklearn.metrics import roc_auc_score
from test_e2e_cli import fraud

from fraud.settings.pipeline import DEFAULT_MODEL


@pytest.fixture(scope="module")
def boosted_only(tmp_path_factory):
    """A real second model: the default one without its forest (the boosted trees alone)."""
    d = tmp_path_factory.mktemp("boosted")
    spec = orjson.loads((DEFAULT_MODEL / "model.json").read_bytes())
    del spec["forest"]
    (d / "model.json").write_bytes(orjson.dumps(spec))
    shutil.copy(DEFAULT_MODEL / "model_card.json", d / "model_card.json")
    return d


def _read(path) -> list[dict]:
    return [orjson.loads(line) for line in open(path, "rb")]


def test_a_shadow_model_scores_every_transaction_and_decides_nothing(small_stream, boosted_only, tmp_path):
    tx, fb = str(small_stream["tx"]), str(small_stream["feedback"])
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    fraud("detect", "--input", tx, "--feedback", fb, "--output", str(a), "--shadow-model", str(boosted_only))
    fraud("detect", "--input", tx, "--feedback", fb, "--output", str(b))
    fraud("detect", "--input", tx, "--feedback", fb, "--output", str(c), "--model", str(boosted_only))
    with_shadow, plain, as_champion = _read(a), _read(b), _read(c)
    assert len(with_shadow) == len(plain) == len(as_champion) > 1000
    for s, p, ch in zip(with_shadow, plain, as_champion, strict=True):
        shadow = s.pop("shadow_score")
        s.pop("latency_ms"), p.pop("latency_ms")
        assert s == p  # not one decision, score or reason changed
        assert shadow == ch["model_score"]  # the challenger's score as if it were the champion
    assert any(s["model_score"] != ch["model_score"] for s, ch in zip(plain, as_champion, strict=True))

    report = fraud(
        "evaluate", "--decisions", str(a), "--labels", str(small_stream["labels"]), "--json", str(tmp_path / "m.json")
    )
    assert "champion vs challenger" in report.stdout
    m = json.loads((tmp_path / "m.json").read_text())["shadow"]
    labels = {r["tx_id"]: r["is_fraud"] for r in map(orjson.loads, open(small_stream["labels"], "rb"))}
    kept = [d for d in as_champion if d["tx_id"] in labels and not d["repeat"]]
    y = np.array([labels[d["tx_id"]] for d in kept])
    assert m["challenger"]["roc_auc"] == pytest.approx(roc_auc_score(y, [d["model_score"] for d in kept]))
    assert 0 < m["block_rate"] < 1 and m["champion"]["recall_at_block_rate"] is not None


def test_evaluate_without_shadow_scores_has_no_comparison(small_stream, tmp_path):
    out = tmp_path / "d.jsonl"
    fraud("detect", "--input", str(small_stream["tx"]), "--output", str(out), "--no-model")
    report = fraud("evaluate", "--decisions", str(out), "--labels", str(small_stream["labels"]))
    assert "challenger" not in report.stdout


def test_a_bad_shadow_model_is_one_line_naming_the_option(small_stream, tmp_path):
    import subprocess

    from conftest import FRAUD

    bad = tmp_path / "bad"
    bad.mkdir()
    spec = orjson.loads((DEFAULT_MODEL / "model.json").read_bytes())
    spec["features"][0] = "count_of_everything"
    (bad / "model.json").write_bytes(orjson.dumps(spec))
    args = ["detect", "--input", str(small_stream["tx"]), "--output", str(tmp_path / "d.jsonl")]
    for where in (bad, tmp_path / "missing"):
        proc = subprocess.run([FRAUD, *args, "--shadow-model", str(where)], capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("fraud detect: error: --shadow-model: "), proc.stderr
        assert proc.stderr.count("error") == 1, proc.stderr
