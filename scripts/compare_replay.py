#!/usr/bin/env python3
"""Time `fraud train`'s replay for the tagged pure-Python core and for this checkout.

Why: issue 12 asks for a replay at least 5 x faster than the pure-Python core's on the same data.
Each timing is a fresh interpreter (PYTHONPATH = that code, the same Python), which imports what
`train()` imports before its replay (scikit-learn's metrics), then calls `replay()` `--calls` times
on the file with its fraud reports: the first call includes loading the compiled kernels from
numba's cache (run `fraud bench` or `fraud demo` once first, or it includes compiling them), the
later ones do not. The two sides alternate `--rounds` times; the ratio is of the medians.
Usage: scripts/compare_replay.py --input TX.jsonl --feedback FB.jsonl [--rounds 3] [--calls 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_core import ROOT, _default_reference, fail, worktree  # noqa: E402

TIMER = """
import json, sys, time
from pathlib import Path
code = Path(sys.argv[1]).resolve()
from sklearn.metrics import average_precision_score, roc_auc_score  # what train() imports first
if (code / "fraud/offline/training.py").exists():
    from fraud.offline.training import MODEL_FEATURES, replay
    from fraud.state.feedback import FeedbackIndex
else:  # the pure-Python core's layout
    from fraud.training import MODEL_FEATURES, replay
    from fraud.feedback import FeedbackIndex
for name, mod in list(sys.modules.items()):
    where = getattr(mod, "__file__", None)
    if name.split(".")[0] == "fraud" and where and not Path(where).resolve().is_relative_to(code):
        sys.exit(f"{name} comes from {where}, not from {code}")
seconds, rows = [], 0
for _ in range(int(sys.argv[4])):
    feedback = FeedbackIndex.from_file(sys.argv[3])
    t = time.perf_counter()
    rows = len(replay(sys.argv[2], list(MODEL_FEATURES), feedback=feedback).tx_ids)
    seconds.append(time.perf_counter() - t)
print(json.dumps({"rows": rows, "features": len(MODEL_FEATURES), "seconds": seconds}))
"""


def time_replay(python: str, code: Path, tx: str, feedback: str, calls: int) -> dict:
    proc = subprocess.run(
        [python, "-c", TIMER, str(code), tx, feedback, str(calls)],
        cwd=code,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        fail(f"the replay in {code} exited with {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="transactions JSON Lines")
    p.add_argument("--feedback", required=True, help="its confirmed fraud reports")
    p.add_argument("--rounds", type=int, default=3, help="old and new, alternated, this many times")
    p.add_argument("--calls", type=int, default=3, help="replays per fresh interpreter (the first loads kernels)")
    p.add_argument("--ref", default=_default_reference(), help="the reference code (a git ref)")
    venv = ROOT / ".venv" / "bin" / "python"
    p.add_argument("--python", default=str(venv) if venv.exists() else sys.executable)
    a = p.parse_args(argv)
    codes = {"old": worktree(a.ref), "new": ROOT}
    tx, fb = str(Path(a.input).resolve()), str(Path(a.feedback).resolve())
    first: dict[str, list[float]] = {"old": [], "new": []}
    later: dict[str, list[float]] = {"old": [], "new": []}
    for r in range(a.rounds):
        for side, code in codes.items():
            out = time_replay(a.python, code, tx, fb, a.calls)
            first[side].append(out["seconds"][0])
            later[side] += out["seconds"][1:]
            shown = ", ".join(f"{s:.3f}" for s in out["seconds"])
            print(
                f"round {r + 1} {side}: {out['rows']:,} rows x {out['features']} features; seconds {shown}", flush=True
            )
    old = statistics.median(first["old"] + later["old"])  # no kernels to load: every call is alike
    print(f"old ({a.ref}): median {old:.3f} s")
    for what, times in (("first call of a fresh process", first["new"]), ("later calls", later["new"])):
        if times:
            new = statistics.median(times)
            print(f"new, {what}: median {new:.3f} s ({min(times):.3f}-{max(times):.3f}) -> {old / new:.1f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
