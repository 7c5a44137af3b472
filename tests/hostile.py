"""Hostile input, generated: a seeded mix of good records and records broken in every way we know.

Each line is made good or bad on purpose, so the test knows the truth without asking the decoder:
good lines carry unique tx_ids and must each get exactly one decision; bad lines must each be
dead-lettered with a reason. The bad kinds follow issue 15's list (broken and truncated JSON, deep
nesting, megabyte strings, huge and tiny numbers, NaN/Infinity, wrong types, duplicated keys,
invalid UTF-8, lone surrogates, BOMs, NUL bytes, times before 1970 or centuries ahead, coordinates
out of range, ids with control characters); the good ones include the hostile-but-valid (CRLF line
ends, escaped NULs and nesting in unknown fields, tiny amounts, non-ASCII ids).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _good(rng: random.Random, n: int) -> dict:
    rec: dict = {
        "tx_id": f"g{n:07d}",
        "card_id": f"card_{rng.randrange(3000):04d}",
        "merchant_id": f"m_{rng.randrange(500):03d}",
        "amount": round(rng.uniform(0.5, 900), 2),
        "event_time": T0 + n * 1000 + rng.randrange(-20_000, 1),  # a little out of order
    }
    if rng.random() < 0.5:
        rec["channel"] = rng.choice(["pos", "online", "atm"])
        rec["lat"], rec["lon"] = round(rng.uniform(-89, 89), 4), round(rng.uniform(-179, 179), 4)
    return rec


def _dump(rec: dict) -> bytes:
    return json.dumps(rec).encode()


def _good_variants() -> list[Callable[[random.Random, dict], bytes]]:
    def iso(rng, rec):
        ms = rec["event_time"]
        rec["event_time"] = "2026-01-01T00:00:00Z" if ms == T0 else _iso(ms)
        return _dump(rec)

    return [
        lambda rng, rec: _dump(rec),
        lambda rng, rec: _dump(rec) + b"\r",  # CRLF line end
        lambda rng, rec: _dump({**rec, "note": "nul \u0000 escaped", "x": {"a": [1, {"b": None}]}}),
        lambda rng, rec: _dump({**rec, "amount": 1e-300}),  # tiny but valid
        lambda rng, rec: _dump({**rec, "card_id": "карта-ü-" + rec["card_id"]}),  # non-ASCII, printable
        lambda rng, rec: json.dumps(rec, ensure_ascii=True, indent=None, separators=(" , ", " : ")).encode(),
        lambda rng, rec: _dump({**rec, "deep": json.loads("[" * 200 + "]" * 200)}),  # nested, under the limit
        iso,
    ]


def _iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _bad_variants() -> list[Callable[[random.Random, dict], bytes]]:
    def truncated(rng, rec):
        b = _dump(rec)
        return b[: rng.randrange(1, len(b) - 1)]

    def with_key(key, value_json):
        def f(rng, rec):
            b = _dump({k: v for k, v in rec.items() if k != key})
            return b[:-1] + f', "{key}": {value_json}}}'.encode()

        return f

    def oversized(rng, rec):  # a megabyte string one time in ten, else just over limits.record_bytes
        return _dump({**rec, "blob": "x" * ((1 << 20) if rng.random() < 0.1 else rng.randrange(65_600, 70_000))})

    return [
        truncated,
        lambda rng, rec: _dump(rec).replace(b'": ', b'"= ', 1),  # broken syntax
        lambda rng, rec: _dump(rec)[:-1] + b",}",  # trailing comma
        lambda rng, rec: _dump(rec).replace(b'"', b"'"),  # single quotes
        lambda rng, rec: _dump({**rec, "deep": 0})[:-3] + b"[" * 1100 + b"]" * 1100 + b"}",  # too deep
        oversized,
        lambda rng, rec: _dump({**rec, "tx_id": "t" * 200}),  # an id over the limit
        with_key("amount", "1e400"),  # beyond float
        with_key("amount", "1e300"),  # over limits.amount_max
        with_key("amount", "-1e-300"),  # negative, however tiny
        with_key("amount", "NaN"),
        with_key("amount", "Infinity"),
        with_key("amount", '"12.50"'),  # wrong types
        with_key("tx_id", "12345"),
        with_key("card_id", "null"),
        with_key("event_time", "[1767225600000]"),
        with_key("event_time", "true"),
        lambda rng, rec: _dump(rec)[:-1] + b', "amount": 5}',  # a key given twice
        lambda rng, rec: _dump(rec).replace(rec["tx_id"].encode(), rec["tx_id"].encode() + b"\xff\xfe"),  # bad UTF-8
        lambda rng, rec: _dump(rec).replace(rec["tx_id"].encode(), rec["tx_id"].encode() + b"\\ud800"),  # surrogate
        lambda rng, rec: b"\xef\xbb\xbf" + _dump(rec),  # a byte-order mark
        lambda rng, rec: _dump(rec).replace(b'", "', b'",\x00 "', 1),  # a raw NUL byte
        lambda rng, rec: _dump({**rec, "tx_id": rec["tx_id"] + "\u0000"}),  # NUL in an id
        lambda rng, rec: _dump({**rec, "card_id": "\u001b[2J" + rec["card_id"]}),  # terminal escape in an id
        lambda rng, rec: _dump({**rec, "merchant_id": rec["merchant_id"] + "\n"}),  # newline in an id
        with_key("event_time", "-86400000"),  # 1969
        with_key("event_time", '"1901-12-13T20:45:52Z"'),
        with_key("event_time", '"2526-01-01T00:00:00Z"'),  # centuries ahead
        with_key("event_time", "32503680000000"),  # year 3000, epoch ms
        with_key("lat", "91.5"),
        with_key("lon", "-180.01"),
        lambda rng, rec: _dump({**rec, "card_id": "4111 1111 1111 1111"}),  # a card number
        lambda rng, rec: _dump([rec["tx_id"], rec["amount"]]),  # not an object
        lambda rng, rec: b'"just a string"',
        lambda rng, rec: b"null",
        lambda rng, rec: _dump({k: v for k, v in rec.items() if k != "merchant_id"}),  # missing field
    ]


GOOD_KINDS = len(_good_variants())
BAD_KINDS = len(_bad_variants())


def hostile_lines(n: int, seed: int = 15, bad_share: float = 0.5) -> tuple[list[bytes], set[str], list[int]]:
    """`n` lines (no line ends): the good tx_ids, and the 1-based line numbers of the bad lines."""
    rng = random.Random(seed)
    goods, bads = _good_variants(), _bad_variants()
    lines: list[bytes] = []
    good_ids: set[str] = set()
    bad_at: list[int] = []
    oversized = next(i for i, f in enumerate(bads) if f.__name__ == "oversized")
    for k in range(n):
        rec = _good(rng, k)
        if rng.random() < bad_share:
            kind = k % len(bads)
            if kind == oversized and rng.random() > 0.1:  # rarer than the rest: each is 64 KiB or more
                kind = (kind + 1) % len(bads)
            lines.append(bads[kind](rng, rec))
            bad_at.append(k + 1)
        else:
            lines.append(goods[k % len(goods)](rng, rec))
            good_ids.add(rec["tx_id"])
    return lines, good_ids, bad_at
