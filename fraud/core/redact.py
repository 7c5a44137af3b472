"""Card numbers never leave the detector in clear: masking for dead letters and messages, and the
test that refuses a raw card number where a card token belongs."""

from __future__ import annotations

import re

_PAN_RE = re.compile(rb"(?<!\d)\d(?:[ ._-]?\d){12,}(?!\d)")
_SEPARATORS = re.compile(r"[\s._-]")


def _luhn_ok(digits: bytes) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = ch - 48
        if k % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _holds_pan(text: bytes) -> bool:
    """Some stretch of whole digit groups (the text split at its separators) is 13-19 digits and
    Luhn-valid: `1 4111 1111 1111 1111` holds a card number after the stray `1`."""
    groups = re.split(rb"[ ._-]", text)
    for i in range(len(groups)):
        digits = b""
        for g in groups[i:]:
            digits += g
            if len(digits) > 19:
                break
            if len(digits) >= 13 and _luhn_ok(digits):
                return True
    return False


def _mask(m: re.Match) -> bytes:
    text = m.group()
    if not _holds_pan(text):
        return text
    return b"*" * (len(text) - 4) + text[-4:]


def mask_pans(raw: bytes) -> bytes:
    """Mask card numbers (13-19 digits, single spaces, dots, dashes or underscores between them,
    Luhn-valid, also after a stray group of digits) before they reach a dead-letter output or a log;
    the Luhn check spares most ids and epoch timestamps."""
    return _PAN_RE.sub(_mask, raw)


def mask_text(text: str) -> str:
    return mask_pans(text.encode("utf-8", "surrogatepass")).decode("utf-8", "replace")


# digits with single spaces between them (separators are spaces by then), set apart from letters
# and digits on both sides
_DIGIT_STRETCH = re.compile(r"(?<![A-Za-z0-9])[0-9](?: ?[0-9])*(?![A-Za-z0-9])")


_NO_DIGITS = str.maketrans("", "", "0123456789")


def looks_like_pan(value: str) -> bool:
    """The value is, or contains, a card number: a stretch of digits set apart from letters (the
    whole value, or between spaces, dots, dashes or underscores) holding 13-19 Luhn-valid digits,
    also after a stray digit group. Digits inside an alphanumeric token (`c_9a32978791841116`, a
    hex token) are part of the token, not a card number. Cheap for values with fewer than 13
    digits, which is what the check costs per event. (A random 16-digit numeric token passes one
    time in ten: card tokens should not be 13-19 digit numbers.)"""
    if len(value) < 13 or len(value.translate(_NO_DIGITS)) > len(value) - 13:  # < 13 ASCII digits
        return False
    for m in _DIGIT_STRETCH.finditer(_SEPARATORS.sub(" ", value)):
        if m.end() - m.start() >= 13 and _holds_pan(m.group().encode()):
            return True
    return False
