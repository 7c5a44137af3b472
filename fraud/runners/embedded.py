"""Embedded runner: a JSON Lines file (or stdin) in, decisions and dead letters out, one process.

File order is arrival order. With a state directory the run checkpoints every N records (outputs
flushed and fsynced first, then one RocksDB batch with the card states, the input offset and the
output sizes) and a rerun resumes from the last checkpoint: outputs written after it are cut off
and produced again, so an interrupted run ends with exactly the bytes of an uninterrupted one
(except `latency_ms`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

from fraud.core.detector import RUN_MAX, Detector
from fraud.core.latency import LatencyLog
from fraud.core.records import BadRecord, dead_letter_text, decode
from fraud.core.redact import mask_text
from fraud.errors import UserError
from fraud.runners.live_view import RunView
from fraud.runners.pauses import settle
from fraud.scoring.rules_watch import RulesWatch


def dead_letter(line_no: int, error: str, raw: bytes) -> bytes:
    record, size = dead_letter_text(raw)
    letter = {"line": line_no, "error": mask_text(error), "record": record}
    if size is not None:
        letter["record_bytes"] = size  # the record is cut at limits.record_bytes
    return orjson.dumps(letter)


@dataclass
class RunStats:
    records: int = 0
    decisions: dict[str, int] = field(default_factory=lambda: {"allow": 0, "review": 0, "block": 0})
    dead_letters: int = 0
    late: int = 0
    seconds: float = 0.0
    latencies_ms: LatencyLog = field(default_factory=LatencyLog)  # bounded however long the run
    resumed_from_line: int = 0

    @property
    def throughput(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def _is_stream(path: str) -> bool:
    """stdout ('-') or a device/pipe such as /dev/null: written to, never truncated, synced or resumed."""
    return path == "-" or (os.path.exists(path) and not os.path.isfile(path))


def default_dead_letter_path(output: str) -> str:
    """Next to the output (`out.jsonl` -> `out.rejected.jsonl`); `rejected.jsonl` in the working
    directory when the output is stdout or a device such as /dev/null."""
    if _is_stream(output):
        return "rejected.jsonl"
    p = Path(output)
    stem = p.name[: -len(".jsonl")] if p.name.endswith(".jsonl") else p.name
    return str(p.with_name(stem + ".rejected.jsonl"))


def _open_out(path: str, offset: int | None) -> BinaryIO:
    if path == "-":
        return sys.stdout.buffer
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    if offset is None or _is_stream(path):
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


def _where(path: str) -> str:
    """A file's identity in a checkpoint: its real path (symlinks resolved), '-' for stdin/stdout."""
    return path if path == "-" else os.path.realpath(path)


def _input_digest(path: str, offset: int) -> str:
    """SHA-256 of the first and the last 4 KiB before `offset`: the same file up to the checkpoint,
    not another one copied over the same path."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(min(offset, 4096)))
        f.seek(max(0, offset - 4096))
        h.update(f.read(min(offset, 4096)))
    return h.hexdigest()


def resume_point(
    meta: dict | None, state_dir: str, input_path: str, output_path: str, dead_letter_path: str, run_id: str | None
) -> dict | None:
    """The checkpoint to resume from (None: a fresh store), or a UserError when the store belongs
    to another run: its card histories would silently leak into this one's decisions."""
    if meta is None:
        return None
    fresh = "use an empty --state directory for a new run"
    cp = meta.get("input")
    if not cp:
        raise UserError(f"{state_dir}: this state directory holds no embedded run's checkpoint; {fresh}")
    where = f"{state_dir} holds the checkpoint of a run over {cp['path']} (at line {cp['line']:,})"
    if input_path == "-":
        raise UserError(f"{where}; a run over stdin cannot resume it: {fresh}")
    if cp["path"] != _where(input_path):
        raise UserError(f"{where}: rerun with that --input to resume it, or {fresh}")
    digest = cp.get("input_digest")  # absent in checkpoints written before it was kept
    if os.path.getsize(input_path) < cp["offset"] or (digest and digest != _input_digest(input_path, cp["offset"])):
        raise UserError(f"{where}, but the file's content up to that line has changed since: {fresh}")
    if run_id is not None and cp.get("run") not in (None, run_id):
        raise UserError(
            f"{where} with another model, rules, settings or feedback file; resuming would "
            f"mix decisions of both: {fresh}"
        )
    for path, key, option in ((output_path, "output", "--output"), (dead_letter_path, "dead_letter", "--dead-letter")):
        if cp.get(key) not in (None, _where(path)):
            raise UserError(f"{where}, whose {option} was {cp[key]}: resume with the same {option}, or {fresh}")
        if _is_stream(path):
            continue
        size = os.path.getsize(path) if os.path.exists(path) else 0
        if size < cp[key + "_offset"]:
            raise UserError(f"{where}, but {path} is shorter than it was then (moved or edited): {fresh}")
    return cp


def read_runs(src: BinaryIO, run_max: int, room: Callable[[], int]) -> Iterator[list[bytes]]:
    """Runs of complete lines (with their newline) in input order: whatever the read-ahead buffer
    already holds, at most `run_max` and at most `room()` lines, never waiting for more input while
    a line is at hand (`read1` returns what a pipe or stdin has delivered, one read at most)."""
    rest = b""
    lines: list[bytes] = []
    pos = 0
    while True:
        if pos == len(lines):
            chunk = src.read1(1 << 16)
            if not chunk:
                if rest:
                    yield [rest]
                return
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            lines = [line + b"\n" for line in lines]
            pos = 0
            if not lines:
                continue
        end = min(len(lines), pos + max(1, min(run_max, room())))
        yield lines[pos:end]
        pos = end


def run_file(
    detector: Detector,
    input_path: str,
    output_path: str,
    dead_letter_path: str,
    checkpoint_every: int = 100_000,
    checkpoint_interval_ms: int | None = None,
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
    run_id: str | None = None,
    run_max: int = RUN_MAX,
    stats: RunStats | None = None,
    rules_watch: RulesWatch | None = None,
    view: RunView | None = None,
) -> RunStats:
    """Decide every record of `input_path`; resume from the store's checkpoint when it has one.

    Lines are decided in runs of at most `run_max` (one kernel call each, see `read_runs`): larger runs
    cost less per event, and each event waits for the run before it to be decided.
    A checkpoint is taken every `checkpoint_every` records or `checkpoint_interval_ms` (None: no
    time limit), whichever comes first: its cost grows with the cards changed since the last one, so
    a time bound keeps it a fixed share of the run however fast records arrive.
    `run_id` fingerprints what decides (model, rules, settings, feedback): a checkpoint taken under
    another one is refused. `stop_after` ends the run after that many records without a final
    checkpoint, as a crash would (used by tests of recovery). `stats`: the caller's, to watch the
    run as it goes (the soak bench reads it at each `progress` call). `rules_watch`: the rules file,
    checked between runs; an edit applies from the next run (`RulesWatch`). `view`: the live status
    line and metrics (`live_view.RunView`), fed once per run.
    """
    store = detector.store
    resume = resume_point(store.meta(), str(store.path), input_path, output_path, dead_letter_path, run_id)
    stats = stats or RunStats()
    offset = resume["offset"] if resume else 0
    line_no = resume["line"] if resume else 0
    stats.resumed_from_line = line_no
    src: BinaryIO = sys.stdin.buffer if input_path == "-" else open(input_path, "rb")
    out = _open_out(output_path, resume["output_offset"] if resume else None)
    dlq = _open_out(dead_letter_path, resume["dead_letter_offset"] if resume else None)
    flush_each = input_path == "-"
    synced = [f for f, path in ((out, output_path), (dlq, dead_letter_path)) if not _is_stream(path)]
    if offset and detector.feeds_merchants:
        _rebuild_merchants(detector, src, offset)
    if offset:
        src.seek(offset)
    clock = time.perf_counter_ns
    dumps, NEWLINE = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    lat_extend = stats.latencies_ms.extend
    counts = stats.decisions
    since_checkpoint = 0
    interval_ns = None if checkpoint_interval_ms is None else checkpoint_interval_ms * 1_000_000
    last_checkpoint = clock()
    t_start = time.perf_counter()

    def checkpoint() -> None:
        out.flush()
        dlq.flush()
        for f in synced:
            os.fsync(f.fileno())
        if input_path != "-":
            store.checkpoint(
                {
                    **detector.checkpoint_meta(),
                    "input": {
                        "path": _where(input_path),
                        "offset": offset,
                        "line": line_no,
                        "run": run_id,
                        "input_digest": _input_digest(input_path, offset),
                        "output": _where(output_path),
                        "dead_letter": _where(dead_letter_path),
                        "output_offset": out.tell() if out in synced else 0,
                        "dead_letter_offset": dlq.tell() if dlq in synced else 0,
                    },
                },
                forget_before=detector.history_cutoff() if detector.max_ts is not None else None,
            )

    settle()  # start-up objects out of the garbage collector's way (`pauses.py`)
    try:
        # room() reads since_checkpoint as the loop leaves it: the run stops at the next checkpoint
        for lines in read_runs(src, run_max, lambda: checkpoint_every - since_checkpoint):  # noqa: B023
            arrived = clock()  # taken from the read-ahead buffer: the run has reached the detector
            txs = []
            for raw in lines:
                line_no += 1
                offset += len(raw)
                try:
                    txs.append(decode(raw))
                except BadRecord as exc:
                    dlq.write(dead_letter(line_no, str(exc), raw) + b"\n")
                    stats.dead_letters += 1
            if txs:
                if rules_watch is not None and rules_watch.poll():
                    detector.set_rules(rules_watch.rules)
                recs = detector.records(txs, detector.run(txs), [arrived] * len(txs), clock)
                out.write(b"".join([dumps(d, option=NEWLINE) for d in recs]))
                late = 0
                for d in recs:
                    counts[d["decision"]] += 1
                    late += d["late"]
                lat_extend([recs[0]["latency_ms"]] * len(recs))  # one arrival, one decision time
                stats.late += late
                if flush_each:
                    out.flush()
                stats.records += len(txs)
                if view is not None:
                    view.after_run(recs, recs[0]["latency_ms"])
            if view is not None:
                view.read_bytes = offset
                view.tick(counts, stats.dead_letters, detector.watermark)
            since_checkpoint += len(lines)
            if since_checkpoint >= checkpoint_every or (
                interval_ns is not None and arrived - last_checkpoint >= interval_ns
            ):
                checkpoint()
                since_checkpoint = 0
                last_checkpoint = clock()
                if progress:
                    progress(offset)
            if stop_after is not None and stats.records >= stop_after:
                return stats
        checkpoint()
        if progress:
            progress(offset)
    finally:
        stats.seconds = time.perf_counter() - t_start
        if view is not None:
            view.close(counts, stats.dead_letters, detector.watermark)
        if input_path != "-":
            src.close()
        for f in (out, dlq):
            if f is getattr(sys.stdout, "buffer", None):  # a notebook's stdout has none
                f.flush()
            else:
                f.close()
    return stats
