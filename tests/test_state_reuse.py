"""A `--state` directory belongs to one run: resuming it with another input, other rules or outputs
that changed would mix two runs' card histories or leave holes in the output, so the CLI refuses
with one line. Outputs that cannot be checkpointed (a pipe, /dev/null) still work."""

from __future__ import annotations

import subprocess

import pytest
from conftest import FRAUD


def fraud(*args, cwd=None, stdout=subprocess.PIPE):
    return subprocess.run(
        [FRAUD, *map(str, args)], stdout=stdout, stderr=subprocess.PIPE, text=True, cwd=cwd, timeout=300
    )


@pytest.fixture(scope="module")
def finished(small_stream, tmp_path_factory):
    """One complete checkpointed run over the small stream, rules only."""
    d = tmp_path_factory.mktemp("reuse")
    r = fraud(
        "detect", "--input", small_stream["tx"], "--output", d / "out.jsonl", "--state", d / "state", "--no-model"
    )
    assert r.returncode == 0, r.stderr
    return d


def _refused(r, *words):
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith("fraud detect: error:")
    for w in words:
        assert w in line, line


def test_other_input_is_refused(finished, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text('{"tx_id": "t", "card_id": "c", "merchant_id": "m", "amount": 1, "event_time": 0}\n')
    _refused(
        fraud(
            "detect", "--input", other, "--output", tmp_path / "o.jsonl", "--state", finished / "state", "--no-model"
        ),
        "checkpoint of a run over",
        "tx.jsonl",
        "empty --state",
    )
    assert not (tmp_path / "o.jsonl").exists()


def test_other_rules_are_refused(finished, small_stream, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - name: big\n    action: review\n    when: {feature: amount, op: '>', value: 500}\n")
    _refused(
        fraud(
            "detect",
            "--input",
            small_stream["tx"],
            "--output",
            finished / "out.jsonl",
            "--state",
            finished / "state",
            "--no-model",
            "--rules",
            rules,
        ),
        "another model, rules, settings or feedback",
    )


def test_other_output_is_refused(finished, small_stream, tmp_path):
    _refused(
        fraud(
            "detect",
            "--input",
            small_stream["tx"],
            "--output",
            tmp_path / "elsewhere.jsonl",
            "--state",
            finished / "state",
            "--no-model",
        ),
        "--output was",
        "out.jsonl",
    )


def test_stdin_cannot_resume(finished, small_stream):
    with open(small_stream["tx"], "rb") as src:
        r = subprocess.run(
            [FRAUD, "detect", "--input", "-", "--output", "-", "--state", str(finished / "state"), "--no-model"],
            stdin=src,
            capture_output=True,
            text=True,
            timeout=300,
        )
    _refused(r, "stdin")


def test_finished_run_says_nothing_is_left(finished, small_stream):
    before = (finished / "out.jsonl").read_bytes()
    r = fraud(
        "detect",
        "--input",
        small_stream["tx"],
        "--output",
        finished / "out.jsonl",
        "--state",
        finished / "state",
        "--no-model",
    )
    assert r.returncode == 0, r.stderr
    assert "nothing left to decide" in r.stderr
    assert (finished / "out.jsonl").read_bytes() == before


def test_truncated_output_is_refused(small_stream, tmp_path):
    out = tmp_path / "out.jsonl"
    assert (
        fraud(
            "detect", "--input", small_stream["tx"], "--output", out, "--state", tmp_path / "st", "--no-model"
        ).returncode
        == 0
    )
    out.write_bytes(out.read_bytes()[:100])
    _refused(
        fraud("detect", "--input", small_stream["tx"], "--output", out, "--state", tmp_path / "st", "--no-model"),
        "shorter than it was",
    )


def test_outputs_to_a_pipe_and_to_dev_null(small_stream, tmp_path):
    """A file input checkpoints as it goes; its decisions may still go to a pipe or /dev/null."""
    ref = tmp_path / "ref.jsonl"
    assert fraud("detect", "--input", small_stream["tx"], "--output", ref, "--no-model").returncode == 0
    piped = subprocess.run(
        f"'{FRAUD}' detect --input '{small_stream['tx']}' --output - --no-model | cat",
        shell=True,
        capture_output=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert piped.returncode == 0, piped.stderr
    strip = [line.split(b'"latency_ms"')[0] for line in ref.read_bytes().splitlines()]
    assert [line.split(b'"latency_ms"')[0] for line in piped.stdout.splitlines()] == strip
    r = fraud(
        "detect",
        "--input",
        small_stream["tx"],
        "--output",
        "/dev/null",
        "--dead-letter",
        "/dev/null",
        "--no-model",
        "--state",
        tmp_path / "st",
    )
    assert r.returncode == 0, r.stderr
    assert "decided" in r.stderr


def test_another_file_copied_over_the_input_is_refused(small_stream, tmp_path):
    tx = tmp_path / "tx.jsonl"
    lines = open(small_stream["tx"], "rb").read().splitlines(keepends=True)
    tx.write_bytes(b"".join(lines[:3000]))
    assert (
        fraud(
            "detect", "--input", tx, "--output", tmp_path / "o.jsonl", "--state", tmp_path / "st", "--no-model"
        ).returncode
        == 0
    )
    tx.write_bytes(b"".join(lines[1:]))  # longer, and different from the first line on
    _refused(
        fraud("detect", "--input", tx, "--output", tmp_path / "o.jsonl", "--state", tmp_path / "st", "--no-model"),
        "changed since",
    )


def test_the_same_file_through_a_symlink_resumes(small_stream, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    lines = open(small_stream["tx"], "rb").read().splitlines(keepends=True)
    (real / "tx.jsonl").write_bytes(b"".join(lines[:3000]))
    (tmp_path / "link").symlink_to(real)
    assert (
        fraud(
            "detect", "--input", real / "tx.jsonl", "--output", real / "o.jsonl", "--state", real / "st", "--no-model"
        ).returncode
        == 0
    )
    with open(real / "tx.jsonl", "ab") as f:  # the stream grows: a rerun decides the new lines only
        f.write(b"".join(lines[3000:3500]))
    r = fraud(
        "detect", "--input", "tx.jsonl", "--output", "o.jsonl", "--state", "st", "--no-model", cwd=tmp_path / "link"
    )
    assert r.returncode == 0, r.stderr
    assert "resumed" in r.stderr
    assert len((real / "o.jsonl").read_bytes().splitlines()) == 3500
