"""Replays decode in a forked worker (`offline/decode_ahead.py`): the same transactions, the same
rejected lines and the same feature rows as the serial reader, whatever the blocks' edges cut."""

import os

import numpy as np
import pytest

import fraud.offline.decode_ahead as ahead
from fraud.core.records import Transaction, iter_transactions
from fraud.errors import UserError
from fraud.offline.decode_ahead import TransactionRuns
from fraud.offline.training import MODEL_FEATURES, replay
from fraud.state.feedback import FeedbackIndex
from tests.hostile import hostile_lines

pytestmark = pytest.mark.skipif(not ahead.can_fork(), reason="decoding ahead needs Linux and two CPUs")


def _fields(tx: Transaction) -> tuple:
    return tuple(getattr(tx, f) for f in Transaction.__slots__)


def _read(path, parallel: bool) -> tuple[list[tuple], list[int], list[int], list[int]]:
    """Transactions, rejected line numbers, progress calls, run lengths."""
    rejected: list[int] = []
    seen: list[int] = []
    with TransactionRuns(str(path), seen.append, rejected, parallel=parallel) as runs:
        out = [list(map(_fields, run)) for run in runs]
    return [tx for run in out for tx in run], rejected, seen, [len(r) for r in out]


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 KiB: dozens of edges in a small file, some inside megabyte lines."""
    monkeypatch.setattr(ahead, "BLOCK_BYTES", 4096)
    monkeypatch.setattr(ahead, "AHEAD", 3)


def test_hostile_file_reads_the_same_decoded_ahead(tmp_path, small_blocks):
    lines, good_ids, bad_at = hostile_lines(1500, seed=7)
    path = tmp_path / "tx.jsonl"
    # blank lines, a CRLF end, and a last line without its newline: lines split as a file's do
    body = b"\n".join(lines[:700]) + b"\n\n   \n" + b"\n".join(lines[700:1000]) + b"\r\n" + b"\n".join(lines[1000:])
    path.write_bytes(body)
    serial, serial_bad, _, _ = _read(path, parallel=False)
    forked, forked_bad, progress, runs = _read(path, parallel=True)
    assert forked == serial
    assert forked_bad == serial_bad and len(forked_bad) >= len(bad_at)
    assert {tx[0] for tx in forked} == good_ids
    assert len(runs) > 20 and progress == sorted(progress) and progress[-1] == body.count(b"\n") + 1


def test_replay_rows_are_the_same_decoded_ahead(small_stream, small_blocks, monkeypatch):
    fb = str(small_stream["feedback"])
    serial_runs = TransactionRuns
    monkeypatch.setattr("fraud.offline.decode_ahead.TransactionRuns", lambda *a: serial_runs(*a, parallel=False))
    serial = replay(str(small_stream["tx"]), MODEL_FEATURES, feedback=FeedbackIndex.from_file(fb))
    monkeypatch.setattr("fraud.offline.decode_ahead.TransactionRuns", lambda *a: serial_runs(*a, parallel=True))
    forked = replay(str(small_stream["tx"]), MODEL_FEATURES, feedback=FeedbackIndex.from_file(fb))
    assert forked.tx_ids == serial.tx_ids and forked.card_ids == serial.card_ids
    assert np.array_equal(forked.ts, serial.ts)
    assert np.array_equal(forked.X, serial.X, equal_nan=True) and forked.rejected == serial.rejected
    assert len(serial.tx_ids) == sum(1 for _ in iter_transactions(str(small_stream["tx"])))


def test_a_replay_given_up_half_way_stops_its_worker(small_stream, small_blocks):
    with TransactionRuns(str(small_stream["tx"]), parallel=True) as runs:
        proc = runs._proc
        assert len(next(iter(runs))) > 0
    proc.join(timeout=60)
    assert proc.exitcode is not None and runs._proc is None


def test_a_worker_that_dies_is_an_error_not_a_hang(tmp_path, small_blocks, monkeypatch):
    path = tmp_path / "tx.jsonl"
    path.write_bytes(b"\n".join(hostile_lines(200, bad_share=0.0)[0]))
    monkeypatch.setattr(ahead, "decode_block", lambda block, line: os._exit(3))
    monkeypatch.setattr(ahead, "_POLL_S", 0.05)
    with (
        pytest.raises(RuntimeError, match="ended early \\(exit code 3\\)"),
        TransactionRuns(str(path), parallel=True) as runs,
    ):
        list(runs)


def test_an_unreadable_file_is_a_user_error_either_way(tmp_path):
    for parallel in (False, True):
        with pytest.raises(UserError, match="cannot read transactions"):
            with TransactionRuns(str(tmp_path / "missing.jsonl"), parallel=parallel) as runs:
                list(runs)


def test_no_process_to_be_had_means_a_serial_read(tmp_path, small_blocks, monkeypatch):
    from multiprocessing.process import BaseProcess

    path = tmp_path / "tx.jsonl"
    path.write_bytes(b"\n".join(hostile_lines(300, seed=3)[0]))
    serial = _read(path, parallel=False)

    def refuse(self):
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(BaseProcess, "start", refuse)
    with TransactionRuns(str(path), parallel=True) as runs:
        assert runs._proc is None
    assert _read(path, parallel=True)[:2] == serial[:2]
