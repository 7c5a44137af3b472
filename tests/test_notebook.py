"""Every notebook in notebooks/ runs top to bottom on the files a (small) `fraud demo` run leaves
behind, and draws its figures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Small enough to take ~20 s (training's parameter grid dominates), big enough for the model to train.
SMALL_DEMO = {"cards": 300, "days": 12, "seed": 3}


@pytest.fixture(scope="module")
def small_demo_dir(tmp_path_factory) -> Path:
    """A directory with everything `fraud demo` writes, from a small in-process run; yields its path."""
    from fraud.offline.demo import run_demo

    out = tmp_path_factory.mktemp("demo")
    t0 = time.perf_counter()
    run_demo(str(out), **SMALL_DEMO)
    elapsed = time.perf_counter() - t0
    for name in ("transactions.jsonl", "labels.jsonl", "decisions.jsonl", "metrics.json", "model/model_card.json"):
        assert (out / name).is_file(), f"run_demo left no {name} ({elapsed:.1f}s)"
    return out


def test_the_three_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS] == ["latency", "results", "rules"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_has_no_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "commit the notebook with outputs cleared"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_on_demo_output(small_demo_dir, notebook):
    nb = nbformat.read(notebook, as_version=4)
    saved = os.environ.get("FRAUD_DEMO_DIR")
    os.environ["FRAUD_DEMO_DIR"] = str(small_demo_dir)  # the kernel inherits os.environ
    try:
        nbclient.NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}
        ).execute()
    finally:
        if saved is None:
            os.environ.pop("FRAUD_DEMO_DIR", None)
        else:
            os.environ["FRAUD_DEMO_DIR"] = saved
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, f"{errors[0].ename}: {errors[0].evalue}" if errors else ""
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    figures = {"results": 2, "rules": 3, "latency": 3}[notebook.stem]
    assert len(images) >= figures, f"the notebook drew {len(images)} figure(s), {figures} expected"
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert str(small_demo_dir.resolve()) in text, "the notebook did not read FRAUD_DEMO_DIR"


def test_every_flagged_decision_of_the_demo_has_reasons(small_demo_dir):
    import orjson

    flagged = [d for d in map(orjson.loads, open(small_demo_dir / "decisions.jsonl", "rb")) if d["decision"] != "allow"]
    assert flagged
    for d in flagged:
        r = d["reasons"]
        assert r["rules"] == d["rules"] and r["model_base"] is not None, d
        assert r["features"] or d["model_score"] <= r["model_base"], d  # nothing pushed it up
        assert all(f["contribution"] > 0 for f in r["features"])
