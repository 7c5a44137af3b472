#!/usr/bin/env python3
"""Prove that this checkout decides exactly like the tagged pure-Python core.

Why: the detector's hot path was rewritten (a numba kernel); a rewrite for speed must not change a
single decision. This runs `fraud detect` of a git ref (default `pure-python-core`, checked out once
into .cache/compare/<ref>) and of this checkout on the same inputs, with the same model, rules and
fraud reports, one after the other in the same Python, then compares the decision records: the
same tx_ids in the same order; `decision`, `rules` and `late` equal; `score` and `model_score`
within 1e-6 (None only matches None). Exit status 1 on any difference, 2 if a run fails.
Usage: scripts/compare_core.py --input TX.jsonl [--input ...] [--model DIR] [--rules F] [--feedback FB]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent.parent
PURE_PYTHON_CORE = "91eb68dc7364db6a6c4c1e0eb03673f5f91a2a7a"  # tagged pure-python-core: the last pure-Python core
EXACT = ("decision", "rules", "late")
CLOSE = ("score", "model_score")
TOLERANCE = 1e-6 + 1e-12  # scores are written rounded to 6 decimals: one unit in the last place is within


def fail(message: str) -> NoReturn:
    print(f"compare_core: {message}", file=sys.stderr)
    sys.exit(2)


def git(*args: str, cwd: Path = ROOT) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"git {' '.join(args)}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def _default_reference() -> str:
    ok = (
        subprocess.run(
            ["git", "rev-parse", "--verify", "-q", "pure-python-core^{commit}"], cwd=ROOT, capture_output=True
        ).returncode
        == 0
    )
    return "pure-python-core" if ok else PURE_PYTHON_CORE


def worktree(ref: str) -> Path:
    """A detached worktree of `ref` under .cache/compare/, reused while it is at the ref's commit."""
    sha = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    path = ROOT / ".cache" / "compare" / ref.replace("/", "_")
    if path.is_dir() and (path / ".git").exists() and git("rev-parse", "HEAD", cwd=path) == sha:
        return path
    if path.exists():
        git("worktree", "remove", "--force", str(path))
    git("worktree", "prune")
    path.parent.mkdir(parents=True, exist_ok=True)
    git("worktree", "add", "--detach", str(path), sha)
    return path


def run_detect(python: str, code: Path, args: list[str], output: Path) -> str:
    """`fraud detect` of the code in `code` (its own directory first on sys.path); its summary line."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    probe = subprocess.run(
        [python, "-c", "import fraud, generator as g; print(fraud.__file__, g.__file__)"],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
    )
    where = probe.stdout.split()
    inside = all(Path(p).resolve().is_relative_to(code.resolve()) for p in where)
    if probe.returncode != 0 or len(where) != 2 or not inside:
        fail(f"{python} imports {where or probe.stderr.strip()}, not the code in {code}")
    t0 = time.perf_counter()
    proc = subprocess.run(
        [python, "-m", "fraud.cli", "detect", *args, "--output", str(output)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        fail(f"fraud detect in {code} exited with {proc.returncode}")
    lines = [ln for ln in proc.stderr.replace("\r", "\n").splitlines() if ln.startswith("decided")]
    return f"{time.perf_counter() - t0:.1f}s wall; " + (lines[-1] if lines else "(no summary)")


def load(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def same(field: str, a: Any, b: Any) -> bool:
    if field in CLOSE and a is not None and b is not None:
        return abs(float(a) - float(b)) <= TOLERANCE
    return a == b


def compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> tuple[dict[str, int], list[str]]:
    """Difference counts per field (plus missing/extra/order) and the first differing records."""
    counts = dict.fromkeys([*EXACT, *CLOSE, "missing", "extra", "order"], 0)
    shown: list[str] = []
    old_ids, new_ids = [r["tx_id"] for r in old], [r["tx_id"] for r in new]
    if old_ids == new_ids:
        pairs = list(zip(old, new))
    else:
        by_id = {r["tx_id"]: r for r in new}
        pairs = [(r, by_id[r["tx_id"]]) for r in old if r["tx_id"] in by_id]
        counts["missing"] = len(set(old_ids) - set(new_ids))
        counts["extra"] = len(set(new_ids) - set(old_ids))
        common = set(old_ids) & set(new_ids)
        counts["order"] = sum(
            a != b for a, b in zip([i for i in old_ids if i in common], [i for i in new_ids if i in common])
        )
        at = next((i for i, (x, y) in enumerate(zip(old_ids, new_ids)) if x != y), min(len(old), len(new)))
        shown.append(f"  tx_ids differ from record {at + 1:,}: old {old_ids[at : at + 3]}, new {new_ids[at : at + 3]}")
    for a, b in pairs:
        bad = [f for f in (*EXACT, *CLOSE) if not same(f, a.get(f), b.get(f))]
        for f in bad:
            counts[f] += 1
        if bad and len(shown) < 5:
            shown.append(f"  {a['tx_id']}: " + "; ".join(f"{f} old {a.get(f)!r} new {b.get(f)!r}" for f in bad))
    return counts, shown


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", action="append", required=True, help="transactions JSON Lines (repeatable)")
    p.add_argument("--model", default=str(ROOT / "models" / "default"), help="model directory, for both")
    p.add_argument("--rules", default=str(ROOT / "config" / "rules.yaml"), help="rules YAML, for both")
    p.add_argument("--feedback", default=None, help="confirmed fraud reports, for both")
    p.add_argument(
        "--ref",
        default=_default_reference(),
        help="the reference code (a git ref; default: the tag "
        f"pure-python-core, or its commit {PURE_PYTHON_CORE[:12]} in a clone without the tag)",
    )
    p.add_argument("--new-ref", default=None, help=argparse.SUPPRESS)  # a ref instead of this checkout
    venv = ROOT / ".venv" / "bin" / "python"
    p.add_argument(
        "--python",
        default=str(venv) if venv.exists() else sys.executable,
        help="the Python that runs both (default: the repo's .venv, else this one)",
    )
    a = p.parse_args(argv)
    shared = ["--model", str(Path(a.model).resolve()), "--rules", str(Path(a.rules).resolve())]
    if a.feedback:
        shared += ["--feedback", str(Path(a.feedback).resolve())]
    old_code = worktree(a.ref)
    new_code = worktree(a.new_ref) if a.new_ref else ROOT
    print(f"old: {a.ref} in {old_code}\nnew: {a.new_ref or 'this checkout'} in {new_code}")
    failed = False
    with tempfile.TemporaryDirectory(prefix="compare-core-") as tmp:
        for i, name in enumerate(a.input):
            args = ["--input", str(Path(name).resolve()), *shared]
            outs = {side: Path(tmp) / f"{i}-{side}.jsonl" for side in ("old", "new")}
            for side, code in (("old", old_code), ("new", new_code)):
                print(f"  {side}: {run_detect(a.python, code, args, outs[side])}", flush=True)
            old, new = load(outs["old"]), load(outs["new"])
            counts, shown = compare(old, new)
            total = sum(counts.values())
            failed |= total > 0
            print(
                f"{name}: {len(old):,} transactions (old), {len(new):,} (new); differences: "
                + ", ".join(f"{k} {v:,}" for k, v in counts.items())
                + ("" if total else " -> identical")
            )
            print("".join(f"{line}\n" for line in shown), end="")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
