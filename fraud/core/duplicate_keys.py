"""A key given twice in one record: found cheaply, refused by name.

Parsers disagree on which of two values counts (orjson keeps the last, many keep the first), so a
record that says two things is refused rather than read one way here and another way by the system
that authorised the payment. orjson cannot report duplicates, so `records.decode` compares the
record's quote count with `quotes_if_keys_unique` (one count, about 0.2 µs), then, for records with
text fields we do not read, with `quotes_if_flat`; only when both differ does it parse again with
`json`, which can (`refuse_duplicate_keys`, rare: escaped quotes, nested objects).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fraud.core.records import Transaction


def quotes_if_keys_unique(rec: dict, tx: Transaction) -> int:
    """The quotes a record holds if each key appears once and only known fields hold strings.

    A duplicated key adds a key token (two quotes) that the parsed dict does not show, so a record
    with one never has this many quotes; anything else with more (an unknown text field, an escaped
    quote, a nested object) takes `quotes_if_flat`, then the exact check."""
    strings = 3 + (type(tx.event_time) is str)
    for v in (tx.channel, tx.mcc, tx.country, tx.currency):
        strings += v is not None
    return 2 * (len(rec) + strings)


def quotes_if_flat(rec: dict) -> int:
    """The quotes a flat record (no nested values, no escaped quotes) holds if each key appears once:
    the second, slower count, for records with text fields we do not read (a simulator's `source`)."""
    return 2 * (len(rec) + sum(type(v) is str for v in rec.values()))


def refuse_duplicate_keys(line: bytes | str) -> None:
    """Raise `BadRecord` naming the first key given twice in any object of the record."""
    from fraud.core.records import BadRecord

    def pairs(items: list[tuple[str, object]]) -> dict:
        seen: set[str] = set()
        for key, _ in items:
            if key in seen:
                raise BadRecord(f"duplicate key {key[:64]!r}: a key may appear once per object")
            seen.add(key)
        return {}

    try:
        json.loads(line, object_pairs_hook=pairs)
    except RecursionError:  # orjson reads 1,024 levels, `json` fewer
        raise BadRecord("record nested too deeply to check its keys") from None
