"""Where numba keeps its compiled code, set before numba is first imported.

`cache=True` writes native code next to the source by default: read-only in an installed package,
and shared by every checkout. Inside a virtual environment the cache goes into it (it lives and dies
with the install); elsewhere into the user's cache folder. `NUMBA_CACHE_DIR` set by the user wins.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    if sys.prefix != sys.base_prefix and os.access(sys.prefix, os.W_OK):
        return Path(sys.prefix) / "var" / "cache" / "fraudstream-numba"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fraudstream" / "numba"


os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir()))

from numba import njit  # noqa: E402  (the variable above must be set first)

__all__ = ["njit"]
