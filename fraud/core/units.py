"""Time units, once: every duration inside fraudstream is integer milliseconds of event time.

Numba reads these module-level integers as compile-time constants, so the kernels import them too.
"""

from __future__ import annotations

SECOND_MS = 1_000
MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
UNIT_MS = {"ms": 1, "s": SECOND_MS, "m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}


def parse_duration(text: str, units: str = "ms s m h d") -> int | None:
    """'250ms', '5s', '90m', '24h', '30d' -> milliseconds; None unless `text` is a whole number
    followed by one of `units`."""
    text = text.strip()
    for unit in sorted(units.split(), key=len, reverse=True):  # "ms" before "s"
        num = text[: -len(unit)]
        if text.endswith(unit) and num.isdigit():
            return int(num) * UNIT_MS[unit]
    return None
