"""Where numba keeps its compiled code, set before numba is first imported.

`cache=True` writes native code next to the source by default: read-only in an installed package,
and shared by every checkout. Inside a virtual environment the cache goes into it (it lives and dies
with the install); elsewhere into the user's cache folder. `NUMBA_CACHE_DIR` set by the user wins.
Under it, one folder per version of the kernel sources: numba checks only the file that defines a
function, so a kernel calling into another file would otherwise keep stale code when that file changes.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

KERNEL_SOURCES = (
    "jit.py",
    "history_kernel.py",
    "window_kernel.py",
    "score_kernel.py",
    "merchant_kernel.py",
    "report_kernel.py",
    "run_kernel.py",
    "card_kernel.py",
    "explain_kernel.py",
)


def cache_dir() -> Path:
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        return Path(sys.prefix) / "var" / "cache" / "fraudstream-numba"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fraudstream" / "numba"


def _sources_digest() -> str:
    h = hashlib.sha256()
    for name in KERNEL_SOURCES:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:16]


_base = Path(os.environ.get("NUMBA_CACHE_DIR") or cache_dir())
_digest = _sources_digest()
os.environ["NUMBA_CACHE_DIR"] = str(_base if _base.name == _digest else _base / _digest)  # children inherit it

from numba import njit  # noqa: E402  (the variable above must be set first)

__all__ = ["njit"]
