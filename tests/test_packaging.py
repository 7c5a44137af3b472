"""`pip install .` gives a `fraud` that works outside the checkout, with the shipped defaults.

The wheel is built from this checkout and installed into a fresh virtual environment without its
dependencies; those come from the test environment's site-packages through a `.pth` line (so the
test needs no network), while `fraud` itself is imported from the wheel only.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


def test_listed_packages_are_the_source_tree():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(p.parent.relative_to(ROOT).parts)
        for d in ("fraud", "generator")
        for p in (ROOT / d).rglob("__init__.py")
    }
    mapped = {"fraud.defaults.config", "fraud.defaults.models", "fraud.defaults.models.default"}
    assert listed == found | mapped


def test_wheel_runs_detect_with_shipped_defaults(tmp_path, small_stream):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheels.glob("fraudstream-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(venv / "bin" / "python"),
            "install",
            "-q",
            "--no-deps",
            "--disable-pip-version-check",
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    work = tmp_path / "elsewhere"
    work.mkdir()
    out = work / "decisions.jsonl"
    proc = subprocess.run(
        [str(venv / "bin" / "fraud"), "detect", "--input", str(small_stream["tx"]), "--output", str(out)],
        cwd=work,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import fraud; print(fraud.__file__)"],
        cwd=work,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert where.startswith(str(site)), where  # the wheel's fraud, not the checkout's
    decisions = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(decisions) == sum(1 for _ in open(small_stream["tx"], "rb"))
    assert all(d["model_score"] is not None for d in decisions)  # the shipped model was found
    assert {d["decision"] for d in decisions} >= {"allow", "review"}
