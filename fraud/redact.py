"""Card numbers never leave the detector in clear: masking for dead letters and messages, and the
test that refuses a raw card number where a card token belongs."""

from __future__ import annotations

import re

_PAN_RE = re.compile(rb"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_PAN_TEXT = re.compile(r"\d(?:[ -]?\d){12,18}")


def _luhn_ok(digits: bytes) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = ch - 48
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _mask(m: re.Match) -> bytes:
    text = m.group()
    digits = bytes(c for c in text if 48 <= c <= 57)
    if not 13 <= len(digits) <= 19 or not _luhn_ok(digits):
        return text
    return b"*" * (len(text) - 4) + text[-4:]


def mask_pans(raw: bytes) -> bytes:
    """Mask card numbers (13-19 digits, spaces or dashes allowed, Luhn-valid) before they reach a
    dead-letter output or a log; the Luhn check spares most ids and epoch timestamps."""
    return _PAN_RE.sub(_mask, raw)


def mask_text(text: str) -> str:
    return mask_pans(text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")


def looks_like_pan(value: str) -> bool:
    """A whole value that is a card number: 13-19 digits (spaces or dashes between), Luhn-valid.
    Cheap for tokens: anything not starting and ending with a digit is out at once."""
    if not (value[:1].isdigit() and value[-1:].isdigit()) or _PAN_TEXT.fullmatch(value) is None:
        return False
    digits = bytes(c for c in value.encode() if 48 <= c <= 57)
    return 13 <= len(digits) <= 19 and _luhn_ok(digits)
