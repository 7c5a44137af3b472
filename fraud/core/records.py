"""Decode and validate transaction records (SPEC.md section 1).

Validation lives here, once, so every source (file, stdin, Kafka) rejects the same records with the
same reasons. A bad record raises `BadRecord`; the caller sends it to the dead-letter output and goes
on with the stream.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from fraud.core.duplicate_keys import quotes_if_flat, quotes_if_keys_unique, refuse_duplicate_keys
from fraud.core.lines import iter_lines
from fraud.core.redact import looks_like_pan, mask_pans

CARD_PRESENT_CHANNELS = frozenset({"pos", "atm"})


class BadRecord(ValueError):
    """A record that breaks the SPEC record table; the message is the dead-letter reason."""


@dataclass(frozen=True)
class Limits:
    """What a record may be at most (`limits` in the pipeline config), checked before any other work:
    a hostile record costs its size in bytes to refuse, never a parse of a megabyte id or a card-number
    scan of it. Event times outside [event_time_min_ms, event_time_max_ms] are refused too: a payment
    in 1901 or 2950 is an upstream bug or an attack on the windows, never a payment."""

    record_bytes: int = 65_536
    id_chars: int = 128
    amount_max: float = 1e12
    event_time_min_ms: int = 0  # 1970-01-01T00:00:00Z
    event_time_max_ms: int = 4_102_444_800_000  # 2100-01-01T00:00:00Z


_limits = Limits()


def use_limits(limits: Limits) -> None:
    """Set the limits every decode in this process applies (one validator serves every source)."""
    global _limits
    _limits = limits


class Transaction:
    """One validated transaction; `ts` is event time in epoch milliseconds (UTC)."""

    __slots__ = (
        "tx_id",
        "card_id",
        "merchant_id",
        "amount",
        "ts",
        "event_time",
        "channel",
        "lat",
        "lon",
        "mcc",
        "country",
        "currency",
    )

    def __init__(
        self,
        tx_id: str,
        card_id: str,
        merchant_id: str,
        amount: float,
        ts: int,
        event_time: str | int,
        channel: str | None = None,
        lat: float | None = None,
        lon: float | None = None,
        mcc: str | None = None,
        country: str | None = None,
        currency: str | None = None,
    ) -> None:
        self.tx_id = tx_id
        self.card_id = card_id
        self.merchant_id = merchant_id
        self.amount = amount
        self.ts = ts
        self.event_time = event_time
        self.channel = channel
        self.lat = lat
        self.lon = lon
        self.mcc = mcc
        self.country = country
        self.currency = currency

    @property
    def card_present(self) -> bool | None:
        """True for pos/atm, False for other channels, None when the record has no channel."""
        if self.channel is None:
            return None
        return self.channel in CARD_PRESENT_CHANNELS


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS = -62_135_596_800_000  # 0001-01-01
_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999


def parse_time(value: object, field: str = "event_time") -> int:
    """Event time as epoch milliseconds from ISO 8601 text or integer epoch milliseconds.

    ISO text without an offset is read as UTC (SPEC asks for an offset; a missing one is the common
    mistake of otherwise valid producers, and UTC is the only sane reading).
    """
    if type(value) is int or (type(value) is float and math.isfinite(value) and value.is_integer()):
        if not _MIN_MS <= value <= _MAX_MS:
            raise BadRecord(f"{field} is out of range (years 1-9999): {value!r}")
        return int(value)
    if type(value) is float:
        raise BadRecord(f"{field} must be ISO 8601 text or integer epoch milliseconds, got {value!r}")
    if type(value) is str:
        text = value.strip()
        if text.endswith(("z", "Z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise BadRecord(f"{field} is not an ISO 8601 time: {value[:64]!r}") from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        delta = dt - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise BadRecord(f"{field} must be ISO 8601 text or integer epoch milliseconds, got {type(value).__name__}")


def _iso_ms(text: str) -> int | None:
    """The common case of `parse_time`: ISO text that `fromisoformat` reads as it is (Python 3.11
    accepts a `Z`); None sends anything else through `parse_time`, which names the problem."""
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _req_str(rec: dict, field: str, max_chars: int) -> str:
    value = rec.get(field)
    if value is None:
        raise BadRecord(f"missing required field {field}")
    if type(value) is not str:
        raise BadRecord(f"{field} must be a string, got {type(value).__name__}")
    if not value:
        raise BadRecord(f"{field} is empty")
    if len(value) > max_chars:
        raise BadRecord(f"{field} is {len(value):,} characters, over the limit of {max_chars:,} (limits.id_chars)")
    if not value.isprintable():
        at = next(i for i, c in enumerate(value) if not c.isprintable())
        raise BadRecord(f"{field} holds an unprintable character {value[at]!r} at position {at}")
    return value


def _iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time_in_range(ts: int, lim: Limits) -> int:
    if not lim.event_time_min_ms <= ts <= lim.event_time_max_ms:
        raise BadRecord(
            f"event_time {_iso(ts)} is outside the accepted range {_iso(lim.event_time_min_ms)} to "
            f"{_iso(lim.event_time_max_ms)} (limits.event_time_min, limits.event_time_max)"
        )
    return ts


def _opt_str(rec: dict, field: str) -> str | None:
    value = rec.get(field)
    if value is None or type(value) is str:
        return value
    raise BadRecord(f"{field} must be a string, got {type(value).__name__}")


def _opt_coord(rec: dict, field: str, limit: float) -> float | None:
    value = rec.get(field)
    if value is None:
        return None
    if type(value) not in (int, float) or not math.isfinite(value) or abs(value) > limit:
        raise BadRecord(f"{field} must be a number within ±{limit:g} degrees, got {value!r}")
    return float(value)


_SAFE_IDS: set[str] = set()  # card and merchant ids already found not to hold a card number
_SAFE_IDS_MAX = 1 << 20


def _safe_id(value: str) -> bool:
    """Printable and not a card number: checked once per distinct card or merchant id (they repeat),
    bounded. Ids go into keys, decisions and log lines: a control character there could forge a line."""
    if value in _SAFE_IDS:
        return True
    if not value.isprintable() or (len(value) >= 13 and looks_like_pan(value)):
        return False
    if len(_SAFE_IDS) >= _SAFE_IDS_MAX:
        _SAFE_IDS.clear()
    _SAFE_IDS.add(value)
    return True


def validate(rec: object) -> Transaction:
    """Check a decoded JSON value against the record table; unknown fields are ignored.

    The common case, a valid record, takes one pass of inline checks; anything else goes through
    `_validate_fields`, which finds the first problem and names it."""
    lim = _limits
    if type(rec) is dict:
        get = rec.get
        tx_id, card_id, merchant_id = get("tx_id"), get("card_id"), get("merchant_id")
        amount, event_time = get("amount"), get("event_time")
        ids = lim.id_chars
        if (
            type(tx_id) is str
            and type(card_id) is str
            and type(merchant_id) is str
            and 0 < len(tx_id) <= ids
            and 0 < len(card_id) <= ids
            and 0 < len(merchant_id) <= ids
            and (type(amount) is float or type(amount) is int)
            and 0 <= amount <= lim.amount_max
            and event_time is not None
            and _safe_id(card_id)
            and _safe_id(merchant_id)
            and tx_id.isprintable()
            and (len(tx_id) < 13 or not looks_like_pan(tx_id))
        ):
            ts = _iso_ms(event_time) if type(event_time) is str else None
            if ts is None:
                ts = parse_time(event_time)
            if not lim.event_time_min_ms <= ts <= lim.event_time_max_ms:
                _time_in_range(ts, lim)
            lat, lon = get("lat"), get("lon")
            if type(lat) is float and type(lon) is float and -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0:
                pass  # the common case; NaN fails the comparisons and takes the checks below
            elif lat is not None or lon is not None:
                lat = _opt_coord(rec, "lat", 90.0)
                lon = _opt_coord(rec, "lon", 180.0)
                if (lat is None) != (lon is None):
                    lat = lon = None  # half a location is no location
            channel, mcc, country, currency = get("channel"), get("mcc"), get("country"), get("currency")
            if (
                (channel is None or type(channel) is str)
                and (mcc is None or type(mcc) is str)
                and (country is None or type(country) is str)
                and (currency is None or type(currency) is str)
            ):
                return Transaction(
                    tx_id,
                    card_id,
                    merchant_id,
                    float(amount),
                    ts,
                    event_time,
                    channel,
                    lat,
                    lon,
                    mcc,
                    country,
                    currency,
                )
    return _validate_fields(rec)


def _validate_fields(rec: object) -> Transaction:
    """Field by field, in the record table's order: the first problem is the dead-letter reason."""
    if type(rec) is not dict:
        raise BadRecord(f"record must be a JSON object, got {type(rec).__name__}")
    lim = _limits
    tx_id = _req_str(rec, "tx_id", lim.id_chars)
    card_id = _req_str(rec, "card_id", lim.id_chars)
    merchant_id = _req_str(rec, "merchant_id", lim.id_chars)
    # ids are copied into decisions, keys and logs: a card number there would leave in clear
    if looks_like_pan(card_id) or looks_like_pan(tx_id) or looks_like_pan(merchant_id):
        field = "card_id" if looks_like_pan(card_id) else "tx_id" if looks_like_pan(tx_id) else "merchant_id"
        raise BadRecord(
            f"{field} is a card number (13-19 digits, Luhn-valid), not a "
            f"{'card token' if field == 'card_id' else 'transaction or merchant id'}"
        )
    amount = rec.get("amount")
    if amount is None:
        raise BadRecord("missing required field amount")
    if type(amount) is int:
        amount = float(amount)
    elif type(amount) is not float:
        raise BadRecord(f"amount must be a number, got {type(amount).__name__}")
    if not math.isfinite(amount):
        raise BadRecord(f"amount must be finite, got {amount!r}")
    if amount < 0:
        raise BadRecord(f"amount must be >= 0, got {amount!r}")
    if amount > lim.amount_max:
        raise BadRecord(f"amount is over the limit of {lim.amount_max:g} (limits.amount_max), got {amount!r}")
    event_time = rec.get("event_time")
    if event_time is None:
        raise BadRecord("missing required field event_time")
    ts = _time_in_range(parse_time(event_time), lim)
    lat = _opt_coord(rec, "lat", 90.0)
    lon = _opt_coord(rec, "lon", 180.0)
    if (lat is None) != (lon is None):
        lat = lon = None  # half a location is no location
    return Transaction(
        tx_id,
        card_id,
        merchant_id,
        amount,
        ts,
        event_time,
        channel=_opt_str(rec, "channel"),
        lat=lat,
        lon=lon,
        mcc=_opt_str(rec, "mcc"),
        country=_opt_str(rec, "country"),
        currency=_opt_str(rec, "currency"),
    )


def decode(line: bytes | str | None) -> Transaction:
    """Parse one JSON line into a validated transaction."""
    if line is None:
        raise BadRecord("empty message (no value)")
    if len(line) > _limits.record_bytes:
        raise BadRecord(
            f"record is {len(line):,} bytes, over the limit of {_limits.record_bytes:,} (limits.record_bytes)"
        )
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if not line.strip():  # only on the error path: a blank line is a malformed record too
            raise BadRecord("empty record (blank line or empty message)") from None
        raise BadRecord(f"not valid JSON: {exc}") from None
    try:
        tx = validate(rec)
    except BadRecord:
        refuse_duplicate_keys(line)  # the first reason to give: the record says two things
        raise
    quotes = line.count(b'"' if type(line) is bytes else '"')
    if quotes != quotes_if_keys_unique(rec, tx) and quotes != quotes_if_flat(rec):
        refuse_duplicate_keys(line)
    return tx


def dead_letter_text(raw: bytes) -> tuple[str, int | None]:
    """A bad record as its dead letter keeps it: card numbers masked, and at most
    `limits.record_bytes` of it (with its full size; None when whole), so that a flood of huge
    records cannot fill the dead-letter output a thousand times faster than the input."""
    cut = _limits.record_bytes
    text = mask_pans(raw.rstrip(b"\r\n"))
    if len(text) <= cut:
        return text.decode("utf-8", "replace"), None
    return text[:cut].decode("utf-8", "replace"), len(raw)


def decode_lines(
    lines: Iterable[tuple[int, bytes]], rejected: list[int] | None = None, progress: Callable[[int], None] | None = None
) -> Iterator[Transaction]:
    """The valid transactions of numbered lines, in order, bad ones' numbers appended to `rejected`
    (`progress` told every 20,000 lines). For replays; the runners dead-letter bad lines instead."""
    for n, raw in lines:
        if progress and n % 20_000 == 0:
            progress(n)
        try:
            yield decode(raw)
        except BadRecord:
            if rejected is not None:
                rejected.append(n)


def iter_transactions(
    path: str, progress: Callable[[int], None] | None = None, rejected: list[int] | None = None
) -> Iterator[Transaction]:
    """Valid transactions of a JSON Lines file in file (= arrival) order (`decode_lines`)."""
    return decode_lines(iter_lines(path, "transactions"), rejected, progress)
