"""Numbered lines of input files (transactions, labels, fraud reports), blank ones skipped.

One place opens them, so an unreadable file is the same one-line error everywhere, and a replay's
worker numbers the lines of a block exactly as a serial read numbers the file's.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO


def open_input(path: str, what: str) -> BinaryIO:
    """`path` opened for reading bytes; an unreadable file is a one-line UserError naming `what`."""
    from fraud.errors import UserError

    try:
        return open(path, "rb")
    except OSError as exc:
        raise UserError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def numbered_lines(f: Iterable[bytes], first: int = 1) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every non-blank line of `f`, numbered from `first`."""
    for n, raw in enumerate(f, first):
        if raw.strip():
            yield n, raw


def iter_lines(path: str, what: str) -> Iterator[tuple[int, bytes]]:
    """(line number, line) of every non-blank line of the file."""
    with open_input(path, what) as f:
        yield from numbered_lines(f)
