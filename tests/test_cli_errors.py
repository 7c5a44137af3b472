"""The `fraud` command line (SPEC section 2): --help everywhere; user errors are one line on stderr,
non-zero exit, never a traceback; `fraud simulate` is deterministic.

Every command runs as a real subprocess of the installed entry point. They are independent, so the
module starts them all at once and the tests check the results.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FRAUD = str(ROOT / ".venv" / "bin" / "fraud")
COMMANDS = ("simulate", "train", "detect", "evaluate", "backtest", "demo")

VALID_TX = json.dumps(
    {"tx_id": "t1", "card_id": "c1", "merchant_id": "m1", "amount": 5.0, "event_time": "2026-01-05T12:00:00Z"}
)
RULE_OK = "{feature: amount, op: '>', value: 1}"


def setup_files(d: Path) -> dict:
    f = {}
    f["tx"] = d / "tx.jsonl"
    f["tx"].write_text(VALID_TX + "\n")
    f["labels"] = d / "labels.jsonl"
    f["labels"].write_text('{"tx_id": "t1", "is_fraud": 0, "scenario": null}\n')
    f["bad_yaml"] = d / "bad.yaml"
    f["bad_yaml"].write_text("rules:\n  - name: a\n    action: block\n    when: {feature: amount, op: '>', value: 1\n")
    f["unknown_feature"] = d / "unknown_feature.yaml"
    f["unknown_feature"].write_text(
        "rules:\n  - name: odd\n    action: block\n    when:\n      all:\n"
        f"        - {RULE_OK}\n        - {{feature: median_1h, op: '>', value: 3}}\n"
    )
    f["huge_value"] = d / "huge_value.yaml"
    f["huge_value"].write_text(
        f"rules:\n  - name: huge\n    action: block\n    when: {{feature: amount, op: '>', value: {'9' * 400}}}\n"
    )
    f["bad_config"] = d / "pipeline.yaml"
    f["bad_config"].write_text("detector:\n  watermark_bound: 5s\n  watermark_bonud: 10s\n")
    f["bad_duration"] = d / "pipeline2.yaml"
    f["bad_duration"].write_text("detector:\n  watermark_bound: five seconds\n")
    f["a_file"] = d / "a_file"
    f["a_file"].write_text("")
    f["tx_link"] = d / "tx_hardlink.jsonl"
    f["tx_link"].hardlink_to(f["tx"])
    return {k: str(v) for k, v in f.items()}


def error_cases(f: dict, d: Path) -> dict:
    out = str(d / "out.jsonl")
    return {
        "unknown_option": ["detect", "--bogus"],
        "unknown_command": ["frobnicate"],
        "missing_required_evaluate": ["evaluate", "--decisions", f["tx"]],
        "missing_required_simulate": ["simulate", "--labels", str(d / "l.jsonl")],
        "missing_input_output_detect": ["detect", "--no-model"],
        "cards_not_integer": [
            "simulate",
            "--out",
            str(d / "x.jsonl"),
            "--labels",
            str(d / "y.jsonl"),
            "--cards",
            "abc",
        ],
        "bad_start_date": [
            "simulate",
            "--out",
            str(d / "x.jsonl"),
            "--labels",
            str(d / "y.jsonl"),
            "--start",
            "2026-13-45",
            "--cards",
            "50",
            "--days",
            "3",
        ],
        "missing_input_file": ["detect", "--input", str(d / "nope.jsonl"), "--output", out, "--no-model"],
        "missing_rules_file": [
            "detect",
            "--input",
            f["tx"],
            "--output",
            out,
            "--no-model",
            "--rules",
            str(d / "nope.yaml"),
        ],
        "invalid_rules_yaml": ["detect", "--input", f["tx"], "--output", out, "--no-model", "--rules", f["bad_yaml"]],
        "rules_unknown_feature": [
            "detect",
            "--input",
            f["tx"],
            "--output",
            out,
            "--no-model",
            "--rules",
            f["unknown_feature"],
        ],
        "backtest_invalid_rules_yaml": [
            "backtest",
            "--rules",
            f["bad_yaml"],
            "--transactions",
            f["tx"],
            "--labels",
            f["labels"],
            "--no-model",
        ],
        "rules_huge_value": ["detect", "--input", f["tx"], "--output", out, "--no-model", "--rules", f["huge_value"]],
        "config_unknown_field": [
            "detect",
            "--input",
            f["tx"],
            "--output",
            out,
            "--no-model",
            "--config",
            f["bad_config"],
        ],
        "config_bad_duration": [
            "detect",
            "--input",
            f["tx"],
            "--output",
            out,
            "--no-model",
            "--config",
            f["bad_duration"],
        ],
        "missing_model_dir": ["detect", "--input", f["tx"], "--output", out, "--model", str(d / "no_model")],
        "kafka_unavailable": ["simulate", "--kafka", "127.0.0.1:1"],  # detect waits instead
        "output_not_writable": [
            "detect",
            "--input",
            f["tx"],
            "--output",
            str(Path(f["a_file"]) / "out.jsonl"),
            "--no-model",
        ],
        "simulate_output_not_writable": [
            "simulate",
            "--out",
            str(Path(f["a_file"]) / "x.jsonl"),
            "--labels",
            str(d / "y.jsonl"),
            "--cards",
            "50",
            "--days",
            "3",
        ],
        "output_is_input": ["detect", "--input", f["tx"], "--output", f["tx"], "--no-model"],
        "dead_letter_is_input": ["detect", "--input", f["tx"], "--output", out, "--dead-letter", f["tx"], "--no-model"],
        "simulate_labels_over_out": [
            "simulate",
            "--out",
            str(d / "same.jsonl"),
            "--labels",
            str(d / "same.jsonl"),
            "--cards",
            "50",
            "--days",
            "3",
        ],
        "evaluate_json_over_labels": [
            "evaluate",
            "--decisions",
            f["tx"],
            "--labels",
            f["labels"],
            "--json",
            f["labels"],
        ],
        "output_is_rules": [
            "detect",
            "--input",
            f["tx"],
            "--output",
            f["bad_yaml"],
            "--rules",
            f["bad_yaml"],
            "--no-model",
        ],
        "output_hard_link_to_input": ["detect", "--input", f["tx"], "--output", f["tx_link"], "--no-model"],
        "input_is_directory": ["detect", "--input", str(d), "--output", out, "--no-model"],
        "model_and_no_model": ["detect", "--input", f["tx"], "--output", out, "--no-model", "--model", str(d)],
        "kafka_with_input": ["detect", "--kafka", "127.0.0.1:1", "--input", f["tx"], "--output", out],
        "file_with_group": ["detect", "--input", f["tx"], "--output", out, "--no-model", "--group", "g"],
        "simulate_file_with_rate": ["simulate", "--out", out, "--labels", str(d / "l.jsonl"), "--rate", "10"],
        "bench_no_valid_input": ["bench", "--input", f["a_file"]],
        "demo_too_small": ["demo", "--cards", "50", "--days", "10", "--dir", str(d / "tiny_demo")],
    }


def run(args, cwd):
    return subprocess.run([FRAUD, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    f = setup_files(d)
    jobs = {f"help:{c}": [c, "--help"] for c in COMMANDS}
    jobs["help:"] = ["--help"]
    jobs.update({f"err:{k}": v for k, v in error_cases(f, d).items()})
    for name, seed in (("sim_a", 11), ("sim_b", 11), ("sim_c", 12)):
        jobs[name] = [
            "simulate",
            "--out",
            str(d / f"{name}.jsonl"),
            "--labels",
            str(d / f"{name}.labels.jsonl"),
            "--cards",
            "50",
            "--days",
            "3",
            "--seed",
            str(seed),
        ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {k: pool.submit(run, v, d) for k, v in jobs.items()}
        out = {k: fut.result() for k, fut in futures.items()}
    out["dir"] = d
    return out


@pytest.mark.parametrize("command", ("",) + COMMANDS)
def test_help(results, command):
    r = results[f"help:{command}"]
    assert r.returncode == 0, r.stderr
    assert "--help" in r.stdout or "Usage" in r.stdout
    assert "Traceback" not in r.stderr


ERROR_NAMES = [
    "unknown_option",
    "unknown_command",
    "missing_required_evaluate",
    "missing_required_simulate",
    "missing_input_output_detect",
    "cards_not_integer",
    "bad_start_date",
    "missing_input_file",
    "missing_rules_file",
    "invalid_rules_yaml",
    "rules_unknown_feature",
    "backtest_invalid_rules_yaml",
    "rules_huge_value",
    "config_unknown_field",
    "config_bad_duration",
    "missing_model_dir",
    "kafka_unavailable",
    "output_not_writable",
    "simulate_output_not_writable",
    "output_is_input",
    "dead_letter_is_input",
    "simulate_labels_over_out",
    "evaluate_json_over_labels",
    "input_is_directory",
    "model_and_no_model",
    "output_is_rules",
    "output_hard_link_to_input",
    "kafka_with_input",
    "file_with_group",
    "simulate_file_with_rate",
    "bench_no_valid_input",
]


def test_a_demo_too_small_to_train_on_ends_in_one_error_line(results):
    r = results["err:demo_too_small"]
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.splitlines()[-1].startswith("fraud demo: error:")


@pytest.mark.parametrize("name", ERROR_NAMES)
def test_error_is_one_line(results, name):
    r = results[f"err:{name}"]
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("fraud"), lines[0]
    assert "error" in lines[0]


@pytest.mark.parametrize(
    "name, words",
    [
        ("unknown_option", ["--bogus"]),
        ("missing_required_evaluate", ["--labels"]),
        ("cards_not_integer", ["--cards"]),
        ("missing_input_file", ["nope.jsonl"]),
        ("invalid_rules_yaml", ["bad.yaml", "line"]),
        ("rules_unknown_feature", ["unknown_feature.yaml", "odd", "when.all[1].feature", "median_1h"]),
        ("config_unknown_field", ["pipeline.yaml", "watermark_bonud"]),
        ("config_bad_duration", ["pipeline2.yaml", "watermark_bound"]),
        ("output_is_input", ["--output", "--input", "same file"]),
        ("dead_letter_is_input", ["--dead-letter", "--input"]),
        ("simulate_labels_over_out", ["--labels", "--out"]),
        ("evaluate_json_over_labels", ["--json", "--labels"]),
        ("input_is_directory", ["is a directory"]),
        ("output_is_rules", ["--output", "--rules"]),
        ("output_hard_link_to_input", ["--output", "--input"]),
        ("model_and_no_model", ["--model", "--no-model"]),
        ("demo_too_small", ["fewer than", "--cards"]),
        ("kafka_with_input", ["--input", "not --kafka"]),
        ("file_with_group", ["--group", "needs --kafka"]),
        ("simulate_file_with_rate", ["--rate", "needs --kafka"]),
        ("bench_no_valid_input", ["no valid transaction"]),
        ("output_not_writable", ["a_file"]),
    ],
)
def test_error_names_the_culprit(results, name, words):
    msg = results[f"err:{name}"].stderr
    for w in words:
        assert w in msg, msg


def test_errors_write_no_output(results):
    d = results["dir"]
    assert not (d / "out.jsonl").exists()
    assert not (d / "same.jsonl").exists()
    assert (d / "tx.jsonl").read_text() == VALID_TX + "\n"  # an input named as an output is untouched
    assert (d / "labels.jsonl").read_text().startswith('{"tx_id": "t1"')


def test_simulate_writes_files(results):
    d = results["dir"]
    r = results["sim_a"]
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    tx = (d / "sim_a.jsonl").read_text().splitlines()
    labels = (d / "sim_a.labels.jsonl").read_text().splitlines()
    assert len(tx) > 0 and len(tx) == len(labels)
    first = json.loads(tx[0])
    for field in ("tx_id", "card_id", "merchant_id", "amount", "event_time"):
        assert field in first
    assert {json.loads(x)["tx_id"] for x in tx} == {json.loads(x)["tx_id"] for x in labels}
    assert r.stdout == ""  # quiet when not a terminal; the summary goes to stderr


def test_simulate_same_seed_same_bytes(results):
    d = results["dir"]
    assert results["sim_b"].returncode == 0 and results["sim_c"].returncode == 0
    assert (d / "sim_a.jsonl").read_bytes() == (d / "sim_b.jsonl").read_bytes()
    assert (d / "sim_a.labels.jsonl").read_bytes() == (d / "sim_b.labels.jsonl").read_bytes()
    assert (d / "sim_a.jsonl").read_bytes() != (d / "sim_c.jsonl").read_bytes()


@pytest.mark.parametrize("target", ["config/rules.yaml", "models/default/model.json"])
def test_outputs_never_overwrite_the_shipped_files(tmp_path, target):
    """Even when the command does not read it (other --rules, --no-model), a shipped default file is
    not an output: every later run would fail on it."""
    shipped = ROOT / target
    before = shipped.read_bytes()
    (tmp_path / "tx.jsonl").write_text(VALID_TX + "\n")
    (tmp_path / "r.yaml").write_text("rules: []\n")
    try:
        r = run(
            [
                "detect",
                "--input",
                str(tmp_path / "tx.jsonl"),
                "--output",
                str(shipped),
                "--no-model",
                "--rules",
                str(tmp_path / "r.yaml"),
            ],
            tmp_path,
        )
        assert r.returncode == 2 and "would overwrite the shipped" in r.stderr, r.stderr
    finally:
        if shipped.read_bytes() != before:
            shipped.write_bytes(before)
            pytest.fail(f"{target} was overwritten")


def test_rules_check_lists_what_a_file_asks_for_and_names_what_is_wrong(tmp_path):
    ok = run(["rules", "check", str(ROOT / "config" / "rules.yaml")], tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "valid, 5 rule(s)" in ok.stdout and "card_testing_burst" in ok.stdout
    assert "sliding windows: 10m (count, max); 1h (count, min); 24h (distinct_merchants, sum)" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text('rules:\n  - name: x\n    when: {feature: count_10mm, op: ">", value: 1}\n    action: block\n')
    got = run(["rules", "check", str(bad)], tmp_path)
    assert got.returncode == 2 and got.stdout == ""
    assert got.stderr.startswith("fraud rules: error: ") and "rule 'x'" in got.stderr and "when.feature" in got.stderr
    assert len(got.stderr.strip().splitlines()) == 1
