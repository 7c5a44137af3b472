"""The transactions a replay reads (training, backtests), decoded ahead in a second process.

A replay is batch work on a whole file: nothing waits for an event, so its two halves, decoding and
validating the records (Python, about 3 µs a record) and running them through the kernel (compiled,
about 2.5 µs), can run side by side on two cores. A forked worker decodes blocks of whole lines a few
blocks ahead; this process loads the kernels meanwhile, then runs them, block by block, in file
order. The worker runs the very `decode` every source uses, so a replay keeps the same records,
rejects the same lines and gives the same rows as a serial one (tested), only sooner: on the demo
stream (121,816 records), training's first replay in a fresh process took 0.67-0.73 s instead of
0.77 s serially. Less than the decoding it takes off this process (0.33 s), because on this 2-core
machine each process slows the other's memory-bound work by about a fifth (docs/benchmarks.md).

Serial where forking is not safe or not worth it: off Linux, on one CPU, or for a small file.
"""

from __future__ import annotations

import gc
import io
import multiprocessing
import multiprocessing.process
import multiprocessing.queues
import os
import queue
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, BinaryIO

from fraud.core.detector import Detector, open_detector, runs_of
from fraud.core.lines import numbered_lines, open_input
from fraud.core.records import Transaction, decode_lines, iter_transactions
from fraud.runners.pauses import frozen_heap

BLOCK_BYTES = 1 << 20  # about 3,000 records a block: a kernel run each, a pickle of ~0.4 MB back
AHEAD = 16  # blocks decoded and not yet taken, at most: ahead while the kernels load, memory bounded
FIELDS = Transaction.__slots__  # also `Transaction`'s positional order
_POLL_S = 1.0  # how often a wait for the worker checks that it is still alive


def can_fork() -> bool:
    """Linux (fork is the safe default there; macOS forks badly once system frameworks are loaded)
    and a second CPU to decode on."""
    return sys.platform == "linux" and len(os.sched_getaffinity(0)) > 1


def decode_block(block: bytes, first_line: int) -> tuple[tuple[list, ...], list[int]]:
    """The block's valid transactions as columns (pickled, a tenth of the cost of the objects), and
    the numbers of its invalid lines: `decode_lines`, as a serial read."""
    bad: list[int] = []
    txs = list(decode_lines(numbered_lines(io.BytesIO(block), first_line), bad))
    return tuple([getattr(tx, f) for tx in txs] for f in FIELDS), bad


def _worker(f: BinaryIO, out: multiprocessing.queues.Queue) -> None:
    """The forked worker: every block of `f`, in order, then None. Its queue's own thread pickles
    and sends, so decoding goes on while the parent is busy (the parent runs no helper thread, whose
    need for the GIL would stall the worker whenever a kernel holds it)."""
    try:
        line = 1
        while block := f.read(BLOCK_BYTES):
            if not block.endswith(b"\n"):
                block += f.readline()  # the rest of the last line
            cols, bad = decode_block(block, line)
            line += block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
            out.put((cols, bad, line - 1))
        out.put(None)
    except BaseException as exc:  # reported by the parent, which raises it
        out.put(("error", f"{type(exc).__name__}: {exc}"))


class TransactionRuns:
    """Runs of valid transactions of a JSON Lines file, in file order, bad lines skipped (their line
    numbers appended to `rejected`). Enter it before loading the detector: decoding starts at once."""

    def __init__(
        self,
        path: str,
        progress: Callable[[int], None] | None = None,
        rejected: list[int] | None = None,
        parallel: bool | None = None,
    ) -> None:
        self.path, self.progress = path, progress
        self.rejected = rejected if rejected is not None else []
        if parallel is None:
            parallel = can_fork() and _size(path) > 2 * BLOCK_BYTES
        self._proc: multiprocessing.process.BaseProcess | None = None
        if parallel:
            ctx = multiprocessing.get_context("fork")
            self._queue = ctx.Queue(AHEAD)
            with open_input(
                path, "transactions"
            ) as f:  # the worker reads its inherited copy; a bad path is the parent's error
                proc = ctx.Process(target=_worker, args=(f, self._queue), daemon=True, name="fraud-decode")
                try:
                    proc.start()
                    self._proc = proc
                except OSError:  # no process to be had (a limit on processes or memory): read serially
                    self._queue.close()

    def __iter__(self) -> Iterator[list[Transaction]]:
        if self._proc is None:
            yield from runs_of(iter_transactions(self.path, self.progress, rejected=self.rejected))
            return
        while (item := self._next()) is not None:
            cols, bad, last_line = item
            self.rejected += bad
            if self.progress:
                self.progress(last_line)
            if cols[0]:
                yield list(map(Transaction, *cols))

    def _next(self) -> tuple | None:
        assert self._proc is not None
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
                break
            except queue.Empty:
                if self._proc.exitcode is not None and self._queue.empty():
                    raise RuntimeError(
                        f"{self.path}: the process decoding it ended early (exit code {self._proc.exitcode})"
                    ) from None
        if item is not None and item[0] == "error":
            raise RuntimeError(f"{self.path}: decoding failed: {item[1]}")
        return item

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.exitcode is None:
                self._proc.terminate()  # a replay given up half way (an error, ^C)
            self._proc.join()
            self._queue.close()
            self._proc = None

    def __enter__(self) -> TransactionRuns:
        return self

    def __exit__(self, kind: type | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0  # the serial reader says what is wrong with the path


@contextmanager
def replaying(
    path: str, progress: Callable[[int], None] | None, rejected: list[int], **parts: Any
) -> Iterator[tuple[Detector, TransactionRuns]]:
    """A fresh in-memory detector (`open_detector(**parts)`) and the file's runs, for a replay: the
    worker starts decoding before the kernels load, and the heap the replay finds, the kernels'
    included, stays out of full collections while it runs (`pauses.frozen_heap`)."""
    with frozen_heap(), TransactionRuns(path, progress, rejected) as runs, open_detector(**parts) as det:
        gc.freeze()  # what loading the kernels left too
        yield det, runs
