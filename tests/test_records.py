"""fraud.records.decode: the SPEC section 1 transaction table, accepted and refused."""

import json
import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fraud.core.records import BadRecord, Limits, Transaction, decode, use_limits

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms(dt: datetime) -> int:
    """Epoch milliseconds by plain datetime arithmetic (independent of parse_time)."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def base(**over):
    rec = {
        "tx_id": "t1",
        "card_id": "c1",
        "merchant_id": "m1",
        "amount": 12.5,
        "event_time": "2026-01-05T12:00:00.250Z",
    }
    for k, v in over.items():
        if v is DROP:
            rec.pop(k, None)
        else:
            rec[k] = v
    return rec


DROP = object()


def line(**over) -> bytes:
    return json.dumps(base(**over)).encode()


# ------------------------------------------------------------------------------------------
# accepted
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2026-01-05T12:00:00.250Z", datetime(2026, 1, 5, 12, 0, 0, 250000, tzinfo=UTC)),
        ("2026-01-05T12:00:00Z", datetime(2026, 1, 5, 12, tzinfo=UTC)),
        ("2026-01-05T12:00:00z", datetime(2026, 1, 5, 12, tzinfo=UTC)),
        ("2026-01-05T12:00:00+00:00", datetime(2026, 1, 5, 12, tzinfo=UTC)),
        ("2026-01-05T14:30:00+02:30", datetime(2026, 1, 5, 12, tzinfo=UTC)),
        ("2026-01-05T07:00:00.5-05:00", datetime(2026, 1, 5, 12, 0, 0, 500000, tzinfo=UTC)),
        ("2026-01-05T12:00:00.123456+00:00", datetime(2026, 1, 5, 12, 0, 0, 123000, tzinfo=UTC)),
        # naive ISO: read as UTC
        ("2026-01-05T12:00:00", datetime(2026, 1, 5, 12, tzinfo=UTC)),
        ("2026-01-05T12:00:00.999", datetime(2026, 1, 5, 12, 0, 0, 999000, tzinfo=UTC)),
        # before the epoch
        ("1969-12-31T23:59:59.500Z", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
    ],
)
def test_iso_event_time(text, expected):
    use_limits(Limits(event_time_min_ms=-(10**13)))  # the parser reads times before 1970 too
    tx = decode(line(event_time=text))
    assert isinstance(tx, Transaction)
    assert tx.ts == ms(expected)
    assert tx.event_time == text  # echoed as given


def test_offset_and_z_agree():
    a = decode(line(event_time="2026-03-01T00:00:00+01:00")).ts
    b = decode(line(event_time="2026-02-28T23:00:00Z")).ts
    assert a == b


@pytest.mark.parametrize("value", [0, 1, 1767614400250, 1522584000000, -1000])
def test_epoch_ms_event_time(value):
    use_limits(Limits(event_time_min_ms=-(10**13)))  # the parser reads times before 1970 too
    tx = decode(line(event_time=value))
    assert tx.ts == value
    assert type(tx.ts) is int
    assert tx.event_time == value


def test_epoch_and_iso_styles_agree():
    iso = decode(line(event_time="2026-01-05T12:00:00.250Z")).ts
    epoch = decode(line(event_time=ms(datetime(2026, 1, 5, 12, 0, 0, 250000, tzinfo=UTC)))).ts
    assert iso == epoch == 1767614400250


def test_str_and_bytes_input():
    assert decode(line().decode()).tx_id == decode(line()).tx_id == "t1"


def test_trailing_newline_and_whitespace():
    assert decode(line() + b"\r\n").tx_id == "t1"
    assert decode(b"  " + line() + b"  \n").tx_id == "t1"


def test_unknown_extra_fields_ignored():
    tx = decode(line(TX_TIME_SECONDS=31, source="handbook", nested={"a": [1, 2]}, extra=None))
    assert (tx.tx_id, tx.card_id, tx.merchant_id, tx.amount) == ("t1", "c1", "m1", 12.5)


def test_missing_optional_fields():
    tx = decode(line())
    assert tx.channel is None and tx.lat is None and tx.lon is None
    assert tx.mcc is None and tx.country is None and tx.currency is None
    assert tx.card_present is None


def test_optional_fields_read():
    tx = decode(line(currency="EUR", mcc="5411", channel="pos", lat=48.85, lon=2.35, country="FR"))
    assert (tx.currency, tx.mcc, tx.channel, tx.country) == ("EUR", "5411", "pos", "FR")
    assert (tx.lat, tx.lon) == (48.85, 2.35)
    assert tx.card_present is True
    assert decode(line(channel="ecom")).card_present is False


def test_optional_null_is_missing():
    tx = decode(line(currency=None, channel=None, lat=None, lon=None))
    assert tx.currency is None and tx.channel is None and tx.lat is None


@pytest.mark.parametrize("amount", [0, 0.0, 7, 12.34, 1e9])
def test_amount_numbers(amount):
    tx = decode(line(amount=amount))
    assert tx.amount == amount
    assert isinstance(tx.amount, float)


@pytest.mark.parametrize("lat, lon", [(90, 180), (-90, -180), (0, 0), (45.5, -73.6)])
def test_lat_lon_bounds_inclusive(lat, lon):
    tx = decode(line(lat=lat, lon=lon))
    assert (tx.lat, tx.lon) == (lat, lon)


# ------------------------------------------------------------------------------------------
# refused
# ------------------------------------------------------------------------------------------


def reason(raw) -> str:
    with pytest.raises(BadRecord) as exc:
        decode(raw)
    msg = str(exc.value)
    assert msg.strip(), "a BadRecord needs a reason"
    assert "\n" not in msg
    return msg


@pytest.mark.parametrize(
    "raw", [b"this is not JSON", b"{", b'{"tx_id": "t1",', b"{'tx_id': 't1'}", b"\xff\xfe\x00", line()[:-1]]
)
def test_not_json(raw):
    assert "json" in reason(raw).lower()


@pytest.mark.parametrize("raw", [b"", b"\n", b"  \r\n", "\t"])
def test_blank_is_an_empty_record(raw):
    assert reason(raw).startswith("empty record")


@pytest.mark.parametrize(
    "raw, kind",
    [
        (b'["t1", "c1", "m1", 12.5, 1]', "list"),
        (b'"t1"', "str"),
        (b"12", "int"),
        (b"null", "NoneType"),
        (b"true", "bool"),
    ],
)
def test_not_an_object(raw, kind):
    msg = reason(raw)
    assert "object" in msg
    assert kind in msg


@pytest.mark.parametrize("field", ["tx_id", "card_id", "merchant_id", "amount", "event_time"])
def test_missing_required_field(field):
    msg = reason(line(**{field: DROP}))
    assert field in msg and "missing" in msg


@pytest.mark.parametrize("field", ["tx_id", "card_id", "merchant_id", "amount", "event_time"])
def test_null_required_field(field):
    assert field in reason(line(**{field: None}))


@pytest.mark.parametrize(
    "field, value",
    [
        ("tx_id", 17),
        ("tx_id", ["t1"]),
        ("tx_id", True),
        ("card_id", 4111),
        ("card_id", {"a": 1}),
        ("merchant_id", 3.5),
        ("tx_id", ""),
        ("card_id", ""),
    ],
)
def test_id_wrong_type(field, value):
    assert field in reason(line(**{field: value}))


@pytest.mark.parametrize("value", ["12.50", "12", True, False, [12.5], {"v": 1}])
def test_amount_wrong_type(value):
    assert "amount" in reason(line(amount=value))


@pytest.mark.parametrize("value", [-0.01, -3.25, -1])
def test_amount_negative(value):
    msg = reason(line(amount=value))
    assert "amount" in msg and ">= 0" in msg


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999", "-1e999"])
def test_amount_non_finite(literal):
    raw = line().replace(b'"amount": 12.5', b'"amount": ' + literal.encode())
    assert literal.encode() in raw
    reason(raw)  # orjson may refuse the literal itself: either way a BadRecord


@pytest.mark.parametrize("value", [True, False, [1767614400250], {"ms": 1}, 1767614400250.5, 0.1])
def test_event_time_wrong_type(value):
    assert "event_time" in reason(line(event_time=value))


@pytest.mark.parametrize(
    "text",
    [
        "not a time, 32nd of Smarch",
        "",
        "2026-13-01T00:00:00Z",
        "2026-01-05T25:00:00Z",
        "yesterday",
        "2026/01/05 12:00",
        "1767614400250",
    ],
)
def test_event_time_unparseable(text):
    assert "event_time" in reason(line(event_time=text))


@pytest.mark.parametrize("value", [2**63, 2**64 + 5, 10**30, 1e300])
def test_event_time_out_of_any_sane_range(value):
    """An epoch beyond int64 is not a time: it must be a BadRecord, not a crash further down
    (history serialisation packs `ts` as int64 and dies with OverflowError)."""
    raw = line().replace(b'"2026-01-05T12:00:00.250Z"', str(value).encode())
    assert "event_time" in reason(raw)


@pytest.mark.parametrize(
    "field, value",
    [("lat", 90.5), ("lat", -91), ("lon", 180.01), ("lon", -200), ("lat", "45"), ("lat", True), ("lon", [1])],
)
def test_coordinates_out_of_range_or_wrong_type(field, value):
    other = "lon" if field == "lat" else "lat"
    assert field in reason(line(**{field: value, other: 1.0}))


@pytest.mark.parametrize("field", ["currency", "mcc", "channel", "country"])
def test_optional_string_wrong_type(field):
    assert field in reason(line(**{field: 5}))


# ------------------------------------------------------------------------------------------
# property: random valid records always decode and roundtrip
# ------------------------------------------------------------------------------------------

# valid ids are printable: no control, format, surrogate, private-use, unassigned or separator
# characters (an ASCII space is fine)
ids = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Cf", "Co", "Cn", "Zl", "Zp", "Zs")) | st.just(" "),
    min_size=1,
    max_size=30,
)
aware = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2099, 12, 30),  # with any offset, still before limits.event_time_max (2100-01-01Z)
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]),
)


@st.composite
def valid_records(draw):
    rec = {
        "tx_id": draw(ids),
        "card_id": draw(ids),
        "merchant_id": draw(ids),
        "amount": draw(st.one_of(st.integers(0, 10**9), st.floats(0, 1e12, allow_nan=False, allow_infinity=False))),
    }
    dt = draw(aware)
    style = draw(st.sampled_from(["epoch", "iso", "z", "naive"]))
    if style == "epoch":
        rec["event_time"] = ms(dt)
    elif style == "iso":
        rec["event_time"] = dt.isoformat()
    elif style == "z":
        rec["event_time"] = dt.astimezone(UTC).replace(tzinfo=None).isoformat() + "Z"
    else:
        rec["event_time"] = dt.astimezone(UTC).replace(tzinfo=None).isoformat()
    if draw(st.booleans()):
        rec["lat"] = draw(st.floats(-90, 90))
        rec["lon"] = draw(st.floats(-180, 180))
    for f in ("currency", "mcc", "channel", "country"):
        if draw(st.booleans()):
            rec[f] = draw(st.text(st.characters(blacklist_categories=("Cs",)), max_size=5))
    if draw(st.booleans()):
        rec["zz_unknown"] = draw(st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
    return rec, ms(dt)


@settings(max_examples=200, deadline=None)
@given(valid_records())
def test_valid_records_roundtrip(pair):
    rec, expected_ts = pair
    tx = decode(json.dumps(rec).encode())
    assert (tx.tx_id, tx.card_id, tx.merchant_id) == (rec["tx_id"], rec["card_id"], rec["merchant_id"])
    assert tx.amount == rec["amount"] and math.isfinite(tx.amount)
    assert tx.ts == expected_ts
    assert tx.event_time == rec["event_time"]


# ------------------------------------------------------------------------------------------
# limits (`limits` in the pipeline config), checked before any other work
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "over, reason",
    [
        ({"event_time": "1969-12-31T23:59:59Z"}, "event_time 1969-12-31T23:59:59.000Z is outside the accepted range"),
        ({"event_time": "2100-01-01T00:00:00.001Z"}, "limits.event_time_max"),
        ({"event_time": -1}, "outside the accepted range"),
        ({"event_time": "2950-06-01T00:00:00Z"}, "outside the accepted range"),
        ({"tx_id": "t" * 129}, "tx_id is 129 characters, over the limit of 128 (limits.id_chars)"),
        ({"card_id": "c" * 10_000}, "card_id is 10,000 characters"),
        ({"merchant_id": "m" * 129}, "merchant_id is 129 characters"),
        ({"amount": 1e12 + 1}, "amount is over the limit of 1e+12 (limits.amount_max)"),
    ],
)
def test_default_limits_refuse_with_the_limit_named(over, reason):
    with pytest.raises(BadRecord, match=re.escape(reason)):
        decode(line(**over))


def test_limits_at_their_edge_are_accepted():
    tx = decode(line(tx_id="t" * 128, amount=1e12, event_time="2100-01-01T00:00:00Z"))
    assert tx.amount == 1e12 and len(tx.tx_id) == 128
    assert decode(line(event_time=0)).ts == 0


def test_an_oversized_record_is_refused_unread():
    big = line(note="x" * 70_000)
    with pytest.raises(BadRecord, match=r"record is [\d,]+ bytes, over the limit of 65,536 \(limits.record_bytes\)"):
        decode(big)
    with pytest.raises(BadRecord, match="over the limit"):
        decode(b"{" * 100_000)  # deep nesting never reaches the parser


def test_limits_come_from_the_pipeline_config(tmp_path):
    from fraud.settings.pipeline import load_config

    cfg = tmp_path / "pipeline.yaml"
    cfg.write_text(
        "limits:\n  record_bytes: 200\n  id_chars: 8\n  amount_max: 100\n"
        "  event_time_min: 2026-01-01\n  event_time_max: 2026-12-31T23:59:59Z\n"
    )
    load_config(cfg)
    assert decode(line(tx_id="t1", amount=100, event_time="2026-06-01T00:00:00Z")).amount == 100
    for over, reason in (
        ({"tx_id": "t" * 9}, "limits.id_chars"),
        ({"amount": 100.5}, "limits.amount_max"),
        ({"event_time": "2025-12-31T23:59:59Z"}, "limits.event_time_min"),
        ({"note": "x" * 200}, "limits.record_bytes"),
    ):
        with pytest.raises(BadRecord, match=reason):
            decode(line(**{"event_time": "2026-06-01T00:00:00Z", **over}))


@pytest.mark.parametrize(
    "extra, key",
    [
        (', "amount": 6', "amount"),
        (', "channel": "pos", "channel": null', "channel"),
        (' , "amount" : 9', "amount"),
        (', "x": {"a": 1, "a": 2}', "a"),
        (', "source": "sim", "source": "bank"', "source"),  # text fields we do not read, too
        (', "source": "sim", "n": 3, "source": 4', "source"),
        (', "source": "sim", "card_id": "c2"', "card_id"),
    ],
)
def test_a_key_given_twice_is_refused_by_name(extra, key):
    line = '{"tx_id": "t1", "card_id": "c1", "merchant_id": "m1", "amount": 5, "event_time": 0' + extra + "}"
    with pytest.raises(BadRecord, match=f"duplicate key '{key}'"):
        decode(line.encode())
    with pytest.raises(BadRecord, match="duplicate key"):
        decode(line)  # text lines (stdin) the same


@pytest.mark.parametrize(
    "extra",
    [
        "",
        ', "source": "sim", "day": 3',
        ', "note": "he said \\"hi\\""',
        ', "x": {"a": 1}',
        ', "tags": ["a", "b"]',
        ', "channel": null',
    ],
)
def test_records_with_more_quotes_but_no_repeated_key_are_read(extra):
    line = '{"tx_id": "t1", "card_id": "c1", "merchant_id": "m1", "amount": 5, "event_time": 0' + extra + "}"
    assert decode(line.encode()).amount == 5.0


@pytest.mark.parametrize("field", ["tx_id", "card_id", "merchant_id"])
@pytest.mark.parametrize("bad", ["a\x00b", "\x1b[31mred", "line\nbreak", "a\u2028b", "\u200eltr", "\x7f"])
def test_ids_with_control_characters_are_refused(field, bad):
    rec = {"tx_id": "t1", "card_id": "c1", "merchant_id": "m1", "amount": 5, "event_time": 0}
    rec[field] = bad.encode().decode("unicode_escape")
    with pytest.raises(BadRecord, match=f"{field} holds an unprintable character"):
        decode(json.dumps(rec))
