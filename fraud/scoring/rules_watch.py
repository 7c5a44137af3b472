"""A rules file watched while detection runs: a saved edit applies without a restart.

Checked at most every `CHECK_S` between runs (embedded) or batches (Kafka): one `stat`, and a read
only when the file's size, time or inode changed and then stayed the same for one more check, so a
file caught half-written by an editor is not read. A valid new version is taken whole; an invalid one
is refused with one line naming the file, the rule and the field, and detection goes on with the
rules in force. Every decision records the version that decided it (`rules_version`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from fraud.errors import ConfigError
from fraud.scoring.rules import RuleSet, parse_rules_file

CHECK_S = 0.1
_NOTHING = object()


class RulesWatch:
    """The rules in force, and the file they come from. `poll()` is True when new rules were taken."""

    def __init__(
        self,
        path: str | Path,
        rules: RuleSet,
        log: Callable[[str], None],
        check: Callable[[RuleSet], str | None] = lambda rules: None,
        check_s: float = CHECK_S,
    ) -> None:
        self.path = Path(path)
        self.rules = rules
        self.log = log
        self.check = check  # what this runner cannot apply live: the reason, or None
        self.check_s = check_s
        self.changes = 0  # versions taken since the start
        self._next = time.monotonic() + check_s
        self._seen = self._signature()
        self._pending: object = _NOTHING  # a changed signature waiting to hold still (None: no file)
        self._refused: str | None = None  # version last refused: said once

    def _signature(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size, st.st_ino

    def poll(self) -> bool:
        now = time.monotonic()
        if now < self._next:
            return False
        self._next = now + self.check_s
        sig = self._signature()
        if sig == self._seen:
            self._pending = _NOTHING
            return False
        if sig != self._pending:  # changed since the last check: read it once it holds still
            self._pending = sig
            return False
        self._seen, self._pending = sig, _NOTHING
        return self._load()

    def _load(self) -> bool:
        in_force = f"deciding on with rules version {self.rules.version}"
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            self.log(f"rules: cannot read {self.path} ({exc.strerror or exc}); {in_force}")
            return False
        try:
            rules = parse_rules_file(data, self.path)
        except ConfigError as exc:
            if self._refused != exc.args[0]:
                self._refused = exc.args[0]
                self.log(f"rules: refused the edit of {exc}; {in_force}")
            return False
        if rules.version == self.rules.version:  # back to the rules in force: a bad edit again is said again
            self._refused = None
            return False
        reason = self.check(rules)
        if reason is not None:
            if self._refused != reason:
                self._refused = reason
                self.log(f"rules: refused the edit of {self.path}: {reason}; {in_force}")
            return False
        self._refused = None
        self.rules = rules
        self.changes += 1
        self.log(
            f"rules: {self.path} version {rules.version} ({len(rules.rules)} rules) in force from the next transaction"
        )
        return True
