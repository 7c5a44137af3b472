"""Bad input goes to the dead-letter output and processing goes on (SPEC sections 1 and 2)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from fraud.core.detector import Detector
from fraud.core.redact import looks_like_pan, mask_pans
from fraud.runners.embedded import default_dead_letter_path, run_file
from fraud.scoring.rules import load_rules
from fraud.state.store import StateStore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from datetime import UTC

import foreign_sim  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FRAUD = str(ROOT / ".venv" / "bin" / "fraud")
DEFAULT_MODEL = ROOT / "models" / "default" / "model.json"
PAN = "4111111111111111"


def read_jsonl(path):
    with open(path, "rb") as f:
        return [orjson.loads(x) for x in f if x.strip()]


def valid(i, style="epoch"):
    rec = {"tx_id": f"ok_{i}", "card_id": f"card_{i % 3}", "merchant_id": f"m_{i % 5}", "amount": 10.0 + i}
    t = 1767614400000 + i * 60_000
    if style == "epoch":
        rec["event_time"] = t
    else:
        from datetime import datetime

        rec["event_time"] = datetime.fromtimestamp(t / 1000, UTC).isoformat().replace("+00:00", "Z")
        rec["channel"] = "ecom"
    return json.dumps(rec)


def make_detector():
    return Detector(StateStore(None), rules=load_rules(ROOT / "config" / "rules.yaml"), model=None)


def run(tmp_path, lines, newline="\n"):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(x + newline for x in lines), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    dlq = tmp_path / "bad.jsonl"
    det = make_detector()
    try:
        stats = run_file(det, str(src), str(out), str(dlq))
    finally:
        det.store.close()
    return stats, read_jsonl(out), read_jsonl(dlq)


def test_mixed_file(tmp_path):
    bad = foreign_sim.malformed_lines()
    assert len(bad) == 10
    pan_line = json.dumps({"tx_id": "pan", "card_id": PAN, "merchant_id": "m", "amount": "x", "event_time": 1})
    lines, expect_ok, expect_bad = [], [], {}
    k = 0
    for i in range(30):
        lines.append(valid(i, "epoch" if i % 2 else "iso"))
        expect_ok.append(f"ok_{i}")
        if i % 3 == 0 and k < len(bad):
            lines.append(bad[k])
            expect_bad[len(lines)] = bad[k]
            k += 1
        if i % 7 == 0:
            for blank in ("", "   "):  # blank lines are malformed records too
                lines.append(blank)
                expect_bad[len(lines)] = blank
    lines.append(pan_line)
    expect_bad[len(lines)] = pan_line
    lines.append(valid(99))
    expect_ok.append("ok_99")
    assert k == 10

    stats, decisions, dead = run(tmp_path, lines)

    assert [d["tx_id"] for d in decisions] == expect_ok  # one each, in input order
    assert stats.records == len(expect_ok)
    assert stats.dead_letters == len(expect_bad) == 11 + 2 * 5
    assert [d["line"] for d in dead] == sorted(expect_bad)
    for d in dead:
        assert set(d) == {"line", "error", "record"}
        assert isinstance(d["error"], str) and d["error"].strip()
        if not expect_bad[d["line"]].strip():
            assert d["error"].startswith("empty record")
        assert lines[d["line"] - 1] == expect_bad[d["line"]]
        if d["line"] != max(expect_bad):
            assert d["record"] == mask_pans(expect_bad[d["line"]].encode()).decode()
    pan_dead = dead[-1]
    assert PAN not in pan_dead["record"]
    assert "************1111" in pan_dead["record"]
    assert pan_dead["record"] == pan_line.replace(PAN, "*" * 12 + "1111")
    assert "card token" in pan_dead["error"]  # checked before the bad amount


def test_reasons_name_the_problem(tmp_path):
    bad = foreign_sim.malformed_lines()
    _, decisions, dead = run(tmp_path, bad)
    assert decisions == []
    assert [d["line"] for d in dead] == list(range(1, 11))
    errors = [d["error"] for d in dead]
    assert "JSON" in errors[0] and "JSON" in errors[1]
    assert "object" in errors[2]
    assert "tx_id" in errors[3]
    assert "card_id" in errors[4]
    assert "amount" in errors[5] and "amount" in errors[6]
    assert "event_time" in errors[8] and "event_time" in errors[9]
    # the raw record text is kept (apart from masking of long digit runs)
    for d, raw in zip(dead, bad):
        assert d["record"] == mask_pans(raw.encode()).decode()


def test_crlf_lines(tmp_path):
    lines = [valid(0), "not json", valid(1)]
    _, decisions, dead = run(tmp_path, lines, newline="\r\n")
    assert [d["tx_id"] for d in decisions] == ["ok_0", "ok_1"]
    assert dead == [{"line": 2, "error": dead[0]["error"], "record": "not json"}]


def test_non_utf8_line_is_a_dead_letter(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(valid(0).encode() + b"\n\xff\xfe garbage \x80\n" + valid(1).encode() + b"\n")
    det = make_detector()
    stats = run_file(det, str(src), str(tmp_path / "o.jsonl"), str(tmp_path / "d.jsonl"))
    assert stats.records == 2 and stats.dead_letters == 1
    (d,) = read_jsonl(tmp_path / "d.jsonl")
    assert d["line"] == 2 and "garbage" in d["record"]


def test_out_of_range_event_time_is_a_dead_letter_not_a_crash(tmp_path):
    """One record with an epoch beyond int64 must not take the whole run down (it currently
    reaches the card history and crashes the checkpoint with OverflowError)."""
    huge = json.dumps({"tx_id": "huge", "card_id": "card_0", "merchant_id": "m", "amount": 1.0, "event_time": 10**30})
    stats, decisions, dead = run(tmp_path, [valid(0), huge, valid(3)])
    assert [d["tx_id"] for d in decisions] == ["ok_0", "ok_3"]
    assert [d["line"] for d in dead] == [2]


@pytest.mark.parametrize(
    "raw, expected",
    [
        (b'{"card_id": "4111111111111111"}', b'{"card_id": "************1111"}'),
        (b"pan 5500005555555559 end", b"pan ************5559 end"),
        (b"13 digits 4222222222222", b"13 digits *********2222"),
        (b"19 digits 6011000990139424124", b"19 digits ***************4124"),
        (b"spaced 4111 1111 1111 1111 end", b"spaced ***************1111 end"),
        (b"dashed 4111-1111-1111-1111", b"dashed ***************1111"),
        (b"not luhn 4111111111111112 stays", b"not luhn 4111111111111112 stays"),
        (b'"event_time": 1767225600000', b'"event_time": 1767225600000'),
        (b"12 digits 123456789012 stays", b"12 digits 123456789012 stays"),
        (b"20 digits 12345678901234567890 stays", b"20 digits 12345678901234567890 stays"),
        (b"two 4111111111111111,5500005555555559", b"two ************1111,************5559"),
        (b'{"note": "1 4111111111111111"}', b'{"note": "' + b"*" * 14 + b'1111"}'),
        (b"ref-4111111111111111", b"ref-************1111"),
        (b"", b""),
    ],
)
def test_mask_pans(raw, expected):
    assert mask_pans(raw) == expected


@pytest.mark.parametrize(
    "value, expected",
    [
        ("4111111111111111", True),
        ("4111 1111 1111 1111", True),
        ("4111-1111-1111-1111", True),
        ("6011000990139424124", True),
        ("4111111111111112", False),
        ("card_4111111111111111", True),
        (" 4111111111111111\n", True),
        ("4111.1111.1111.1111", True),
        ("4111_1111_1111_1111", True),
        ("123456789012", False),
        ("1767225600000", False),
        ("customer_12", False),
        ("7", False),
        ("1 4111111111111111", True),
        ("id:4111111111111111", True),
        # digits inside an alphanumeric token are the token's, not a card number
        ("c_9a32978791841116", False),
        ("c_058605302265829e", False),
        ("x4111111111111111", False),
    ],
)
def test_looks_like_pan(value, expected):
    assert looks_like_pan(value) is expected


def test_card_numbers_never_reach_outputs_in_clear(tmp_path):
    """A raw card number as card_id is refused (card ids are tokens); one quoted back in an error
    message is masked like the record itself."""
    spaced = "4111 1111 1111 1111"
    lines = [
        valid(0),
        json.dumps(
            {"tx_id": "pan_card", "card_id": PAN, "merchant_id": "m", "amount": 1.0, "event_time": 1767614400000}
        ),
        json.dumps(
            {"tx_id": "pan_spaced", "card_id": spaced, "merchant_id": "m", "amount": 1.0, "event_time": 1767614400000}
        ),
        json.dumps({"tx_id": "pan_time", "card_id": "card_1", "merchant_id": "m", "amount": 1.0, "event_time": PAN}),
        json.dumps({"tx_id": PAN, "card_id": "card_1", "merchant_id": "m", "amount": 1.0, "event_time": 1767614400000}),
        json.dumps(
            {
                "tx_id": "pan_merchant",
                "card_id": "card_1",
                "merchant_id": spaced,
                "amount": 1.0,
                "event_time": 1767614400000,
            }
        ),
        valid(1),
    ]
    stats, decisions, dead = run(tmp_path, lines)
    assert [d["tx_id"] for d in decisions] == ["ok_0", "ok_1"]
    assert [d["line"] for d in dead] == [2, 3, 4, 5, 6]
    assert dead[3]["error"].startswith("tx_id is a card number")
    assert dead[4]["error"].startswith("merchant_id is a card number")
    assert "card token" in dead[0]["error"] and "card token" in dead[1]["error"]
    assert "1111" in dead[2]["error"]  # the masked value is still quoted, its last four digits only
    for name in ("out.jsonl", "bad.jsonl"):
        text = (tmp_path / name).read_text()
        assert PAN not in text and spaced not in text, name


def test_default_dead_letter_path():
    assert default_dead_letter_path("/a/b/out.jsonl") == "/a/b/out.rejected.jsonl"
    assert default_dead_letter_path("out.json") == "out.json.rejected.jsonl"
    assert default_dead_letter_path("-") == "rejected.jsonl"


# ------------------------------------------------------------------------------------------
# acceptance: ~60,000 transactions of the foreign simulator through the real CLI
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def foreign_input(tmp_path_factory):
    d = tmp_path_factory.mktemp("foreign")
    clean = d / "clean.jsonl"
    n = foreign_sim.write(str(clean), str(d / "labels.jsonl"), n_customers=600, n_terminals=1200, days=55, seed=11)
    assert n >= 60_000
    good = clean.read_bytes().splitlines(keepends=True)
    assert len(good) == n
    bad = [(x + "\n").encode() for x in foreign_sim.malformed_lines()]
    step = n // (len(bad) + 1)
    out, bad_lines, k = [], [], 0
    for i, line in enumerate(good):
        if k < len(bad) and i == step * (k + 1):
            out.append(bad[k])
            bad_lines.append(len(out))
            k += 1
        out.append(line)
    assert k == 10
    src = d / "mixed.jsonl"
    src.write_bytes(b"".join(out))
    tx_ids = [orjson.loads(x)["tx_id"] for x in good]
    return src, tx_ids, bad_lines


VARIANTS = {"no-model": ["--no-model"], "default-model": []}


def _variant_enabled(name):
    return name == "no-model" or DEFAULT_MODEL.exists()


@pytest.fixture(scope="module")
def foreign_runs(foreign_input, tmp_path_factory):
    """Start every CLI variant at once (they are independent processes), so the slow part of the
    module costs the longest run, not the sum."""
    src, _, _ = foreign_input
    runs = {}
    for name, extra in VARIANTS.items():
        if not _variant_enabled(name):
            continue
        d = tmp_path_factory.mktemp(name)
        out = d / "decisions.jsonl"
        proc = subprocess.Popen(
            [FRAUD, "detect", "--input", str(src), "--output", str(out), *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=d,
        )
        runs[name] = (proc, out)
    yield runs
    for proc, _ in runs.values():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize(
    "variant",
    [
        "no-model",
        pytest.param(
            "default-model", marks=pytest.mark.skipif(not DEFAULT_MODEL.exists(), reason="no models/default/model.json")
        ),
    ],
)
def test_foreign_simulator_acceptance(foreign_input, foreign_runs, variant):
    _, tx_ids, bad_lines = foreign_input
    if variant not in foreign_runs:
        pytest.skip("no models/default/model.json when the runs started")
    proc, out = foreign_runs[variant]
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    decisions = read_jsonl(out)
    got = [d["tx_id"] for d in decisions]
    assert len(got) == len(set(got)), "duplicate decisions"
    assert set(got) == set(tx_ids)
    assert got == tx_ids  # file order = arrival order
    for d in decisions[::997]:
        assert d["decision"] in ("allow", "review", "block")
        assert 0.0 <= d["score"] <= 1.0
        assert isinstance(d["late"], bool)
    dead_path = out.with_name("decisions.rejected.jsonl")
    assert dead_path.exists()
    dead = read_jsonl(dead_path)
    assert len(dead) == 10
    assert [d["line"] for d in dead] == bad_lines
    assert all(d["error"] for d in dead)
