"""Embedded runner: a JSON Lines file (or stdin) in, decisions and dead letters out, one process.

File order is arrival order. With a state directory the run checkpoints every N records (outputs
flushed and fsynced first, then one RocksDB batch with the card states, the input offset and the
output sizes) and a rerun resumes from the last checkpoint: outputs written after it are cut off
and produced again, so an interrupted run ends with exactly the bytes of an uninterrupted one
(except `latency_ms`).
"""

from __future__ import annotations

import os
import re
import sys
import time
from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import orjson

from .detector import Detector
from .records import BadRecord, decode

_PAN_RE = re.compile(rb"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")


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


def dead_letter(line_no: int, error: str, raw: bytes) -> bytes:
    return orjson.dumps({"line": line_no, "error": error,
                         "record": mask_pans(raw.rstrip(b"\r\n")).decode("utf-8", "replace")})


@dataclass
class RunStats:
    records: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: {"allow": 0, "review": 0, "block": 0})
    dead_letters: int = 0
    late: int = 0
    seconds: float = 0.0
    latencies_ms: array = field(default_factory=lambda: array("d"))
    resumed_from_line: int = 0

    @property
    def throughput(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def default_dead_letter_path(output: str) -> str:
    if output == "-":
        return "rejected.jsonl"
    p = Path(output)
    stem = p.name[:-len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return str(p.with_name(stem + ".rejected.jsonl"))


def _open_out(path: str, offset: int | None) -> BinaryIO:
    if path == "-":
        return sys.stdout.buffer
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if offset is None:
        return open(path, "wb")
    f = open(path, "r+b" if os.path.exists(path) else "wb")
    f.truncate(offset)
    f.seek(offset)
    return f


def _rebuild_merchants(detector: Detector, src: BinaryIO, offset: int) -> None:
    """The merchant table is not checkpointed: a resumed run rebuilds it from the input before the
    checkpoint (as a Kafka worker does from the topic), so it holds exactly what it held then."""
    table = detector.plan.merchants
    done = 0
    for raw in src:
        done += len(raw)
        if done > offset:
            break
        try:
            tx = decode(raw)
        except BadRecord:
            continue
        table.add(tx.merchant_id, tx.card_id, tx.ts)


def run_file(detector: Detector, input_path: str, output_path: str, dead_letter_path: str,
             checkpoint_every: int = 10_000, progress: Callable[[int], None] | None = None,
             stop_after: int | None = None) -> RunStats:
    """Decide every record of `input_path`; resume from the store's checkpoint when it has one.

    `stop_after` ends the run after that many records without a final checkpoint, as a crash would
    (used by tests of recovery).
    """
    store = detector.store
    meta = store.meta() or {}
    resume = meta.get("input") if input_path != "-" else None
    if resume and resume.get("path") != os.path.abspath(input_path):
        resume = None
    stats = RunStats()
    offset = resume["offset"] if resume else 0
    line_no = resume["line"] if resume else 0
    stats.resumed_from_line = line_no
    src: BinaryIO = sys.stdin.buffer if input_path == "-" else open(input_path, "rb")
    out = _open_out(output_path, resume["output_offset"] if resume else None)
    dlq = _open_out(dead_letter_path, resume["dead_letter_offset"] if resume else None)
    flush_each = input_path == "-"
    if offset and detector.feeds_merchants:
        _rebuild_merchants(detector, src, offset)
    if offset:
        src.seek(offset)
    clock = time.perf_counter_ns
    process = detector.process
    lat_append = stats.latencies_ms.append
    counts = stats.decisions
    since_checkpoint = 0
    t_start = time.perf_counter()

    def checkpoint() -> None:
        out.flush()
        dlq.flush()
        for f in (out, dlq):
            if f is not sys.stdout.buffer:
                os.fsync(f.fileno())
        if input_path != "-":
            store.checkpoint({**detector.checkpoint_meta(), "input": {
                "path": os.path.abspath(input_path), "offset": offset, "line": line_no,
                "output_offset": out.tell(), "dead_letter_offset": dlq.tell()}})

    try:
        for raw in src:
            arrived = clock()
            line_no += 1
            offset += len(raw)
            if raw.strip():
                try:
                    tx = decode(raw)
                except BadRecord as exc:
                    dlq.write(dead_letter(line_no, str(exc), raw) + b"\n")
                    stats.dead_letters += 1
                else:
                    d = process(tx, arrived, clock)
                    out.write(orjson.dumps(d) + b"\n")
                    if flush_each:
                        out.flush()
                    counts[d["decision"]] += 1
                    stats.late += d["late"]
                    lat_append(d["latency_ms"])
                    stats.records += 1
            since_checkpoint += 1
            if since_checkpoint >= checkpoint_every:
                checkpoint()
                since_checkpoint = 0
                if progress:
                    progress(offset)
            if stop_after is not None and stats.records >= stop_after:
                return stats
        checkpoint()
        if progress:
            progress(offset)
    finally:
        stats.seconds = time.perf_counter() - t_start
        if src is not sys.stdin.buffer:
            src.close()
        for f in (out, dlq):
            if f is sys.stdout.buffer:
                f.flush()
            else:
                f.close()
    return stats
