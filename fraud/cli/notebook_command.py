"""`fraud notebook`: JupyterLab on the checkout's notebooks/, which read what `fraud demo` leaves."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import typer

from fraud.errors import UserError

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def notebook(
    port: int = typer.Option(8888, "--port", min=1, max=65535, help="where JupyterLab listens (127.0.0.1)"),
) -> None:
    """Start JupyterLab on notebooks/ (results, rules, latency); run `fraud demo` first for their data."""
    if not NOTEBOOKS.is_dir():
        raise UserError(f"{NOTEBOOKS}: no notebooks here (they come with a checkout of the repository, not the wheel)")
    if importlib.util.find_spec("jupyterlab") is None:
        raise UserError(
            f"JupyterLab is not installed: {sys.executable} -m pip install -e '{NOTEBOOKS.parent}[notebooks]'"
        )
    argv = [sys.executable, "-m", "jupyterlab", f"--notebook-dir={NOTEBOOKS}", "--ip=127.0.0.1", f"--port={port}"]
    os.execv(sys.executable, argv)  # JupyterLab takes the terminal over, as if started by hand
