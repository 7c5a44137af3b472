"""The shipped defaults: `config/` (pipeline settings, rules) and `models/default`, found wherever
fraudstream runs from.

In a source checkout they are the repository's own `config/` and `models/` folders, the files the
README tells analysts to edit. In an installed wheel the same folders are package data
(`fraud.defaults.config`, `fraud.defaults.models`: pyproject.toml maps them in), read through
`importlib.resources`. Run folders (`runs/`) go to the checkout, or to the working directory when
installed: never into site-packages.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[2]


def _in_checkout() -> bool:
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "config" / "rules.yaml").is_file()


def shipped(folder: str, name: str) -> Path:
    """Path of a shipped file or folder: shipped("config", "rules.yaml"), shipped("models", "default")."""
    if _in_checkout():
        return _CHECKOUT / folder / name
    return Path(str(resources.files(f"fraud.defaults.{folder}").joinpath(name)))


def runs_dir() -> Path:
    """Where commands put their work by default (demo output, Kafka worker state)."""
    return (_CHECKOUT if _in_checkout() else Path.cwd()) / "runs"
