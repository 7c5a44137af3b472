"""Rules from YAML (SPEC.md section 4): validated as a whole on load, compiled once to an array program.

Rules are data: a condition tree becomes a postfix program of (op, feature slot, constant) rows that
the compiled kernel evaluates (`kernel._rules`), never `eval` and never generated source.
Comparisons with a missing feature value (NaN) are false, so `not` of one is true: write rules
with that in mind (documented in the README).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fraud.core import score_kernel as K
from fraud.errors import ConfigError
from fraud.scoring.features import MAX_WINDOW_DAYS, MAX_WINDOW_MS, is_known, parse_window
from fraud.settings.yaml_files import parse_yaml

ACTIONS = ("allow", "review", "block")
SEVERITY = {a: i for i, a in enumerate(ACTIONS)}
_OPS = {"<": K.OP_LT, "<=": K.OP_LE, ">": K.OP_GT, ">=": K.OP_GE, "==": K.OP_EQ, "!=": K.OP_NE}
_NAME_RE = re.compile(r"^[a-z0-9_]+$")


class _FieldError(ValueError):
    """(field path, message) of a condition error."""


@dataclass
class Rule:
    name: str
    action: str
    description: str
    when: dict
    features: list[str] = field(default_factory=list)


@dataclass
class RuleSet:
    rules: list[Rule]
    thresholds: dict[str, float] | None
    source: str = "<memory>"
    version: str | None = None  # of a rules file: its content's digest, written in every decision

    @property
    def features(self) -> list[str]:
        return list(dict.fromkeys(f for r in self.rules for f in r.features))

    def program(self, index: dict[str, int]) -> RuleProgram:
        """Compile every rule against a feature plan's slots into the kernel's array program."""
        code: list[tuple[int, int]] = []
        consts: list[float] = []
        spans = [0]
        for r in self.rules:
            _emit(r.when, index, code, consts)
            spans.append(len(code))
        return RuleProgram(
            names=[r.name for r in self.rules],
            code=np.array(code, dtype=np.int64).reshape(-1, 2),
            consts=np.array(consts, dtype=np.float64),
            spans=np.array(spans, dtype=np.int64),
            severity=np.array([SEVERITY[r.action] for r in self.rules], dtype=np.int64),
        )


@dataclass
class RuleProgram:
    """Rules as data for the kernel: per rule a postfix run of (op, arg) with a constant each
    (comparisons push `feature[arg] op const`, all/any pop `arg` results, not negates the top)."""

    names: list[str]
    code: np.ndarray  # (ops, 2) int64
    consts: np.ndarray  # (ops,) float64
    spans: np.ndarray  # rule r is code[spans[r]:spans[r + 1]]
    severity: np.ndarray  # per rule: 0 allow, 1 review, 2 block

    @classmethod
    def empty(cls) -> RuleProgram:
        return RuleSet([], None).program({})


def _emit(cond: dict, index: dict[str, int], code: list, consts: list) -> None:
    """Append the postfix program of one (validated) condition."""
    if "feature" in cond:
        code.append((_OPS[cond["op"]], index[cond["feature"]]))
        consts.append(float(cond["value"]))
        return
    key, arg = next(iter(cond.items()))
    if key == "not":
        _emit(arg, index, code, consts)
        code.append((K.OP_NOT, 0))
    else:
        for c in arg:
            _emit(c, index, code, consts)
        code.append((K.OP_ALL if key == "all" else K.OP_ANY, len(arg)))
    consts.append(0.0)


def _check_condition(cond: object, where: str, feats: list[str]) -> None:
    """Validate one condition tree; `where` is the path used in error messages."""
    if not isinstance(cond, dict):
        raise _FieldError(f"{where}", f"a condition must be a mapping, got {type(cond).__name__}")
    if "feature" in cond:
        extra = set(cond) - {"feature", "op", "value"}
        if extra:
            raise _FieldError(f"{where}", f"unexpected key(s) {sorted(extra)}")
        feat = cond.get("feature")
        if not isinstance(feat, str) or not is_known(feat):
            raise _FieldError(f"{where}.feature", f"unknown feature {feat!r} (see docs/features.md)")
        window = parse_window(feat)
        if window is not None and window[1] > MAX_WINDOW_MS:
            raise _FieldError(
                f"{where}.feature",
                f"window of {feat!r} is longer than {MAX_WINDOW_DAYS} days (each card's history is kept that long)",
            )
        if cond.get("op") not in _OPS:
            raise _FieldError(f"{where}.op", f"must be one of {' '.join(_OPS)}, got {cond.get('op')!r}")
        value = cond.get("value")
        if type(value) not in (int, float) or not math.isfinite(float(value) if abs(value) < 1e308 else math.inf):
            raise _FieldError(f"{where}.value", f"must be a finite number, got {value!r}")
        feats.append(feat)
        return
    if len(cond) != 1 or next(iter(cond)) not in ("all", "any", "not"):
        raise _FieldError(
            f"{where}", f"expected {{feature, op, value}} or one of all/any/not, got keys {sorted(map(str, cond))}"
        )
    key, arg = next(iter(cond.items()))
    if key == "not":
        _check_condition(arg, f"{where}.not", feats)
        return
    if not isinstance(arg, list) or not arg:
        raise _FieldError(f"{where}.{key}", "must be a non-empty list of conditions")
    for k, c in enumerate(arg):
        _check_condition(c, f"{where}.{key}[{k}]", feats)


def parse_rules(doc: object, source: str = "<memory>") -> RuleSet:
    """Validate a decoded rules document; any error names the source, the rule and the field."""

    def fail(msg: str) -> ConfigError:
        return ConfigError(f"{source}: {msg}")

    if not isinstance(doc, dict):
        raise fail(
            "top level must be a mapping with 'rules' (and optional 'thresholds')"
            + (": the file is empty" if doc is None else "")
        )
    extra = set(doc) - {"rules", "thresholds"}
    if extra:
        raise fail(f"unexpected top-level key(s) {sorted(map(str, extra))}")
    thresholds = doc.get("thresholds")
    if thresholds is not None:
        if not isinstance(thresholds, dict) or set(thresholds) - {"review", "block"}:
            raise fail("thresholds: must be a mapping with 'review' and/or 'block'")
        for k, v in thresholds.items():
            if type(v) not in (int, float) or not 0.0 <= v <= 1.0:
                raise fail(f"thresholds.{k}: must be a number in [0, 1], got {v!r}")
        if "review" in thresholds and "block" in thresholds and thresholds["review"] > thresholds["block"]:
            raise fail("thresholds: review must be <= block")
        thresholds = {k: float(v) for k, v in thresholds.items()}
    if "rules" not in doc:  # an emptied or truncated file must not quietly mean "no rules"
        raise fail("rules: missing (write 'rules: []' to decide with the model alone)")
    raw_rules = doc["rules"]
    if not isinstance(raw_rules, list):
        raise fail("rules: must be a list")
    rules: list[Rule] = []
    seen: set[str] = set()
    for k, raw in enumerate(raw_rules):
        label = f"rule #{k + 1}"
        if not isinstance(raw, dict):
            raise fail(f"{label}: must be a mapping")
        name = raw.get("name")
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise fail(f"{label}: field 'name': must match [a-z0-9_]+, got {name!r}")
        label = f"rule '{name}'"
        if name in seen:
            raise fail(f"{label}: field 'name': duplicate rule name")
        seen.add(name)
        extra = set(raw) - {"name", "description", "when", "action"}
        if extra:
            raise fail(f"{label}: unexpected field(s) {sorted(map(str, extra))}")
        if raw.get("action") not in ACTIONS:
            raise fail(f"{label}: field 'action': must be one of block, review, allow, got {raw.get('action')!r}")
        description = raw.get("description", "")
        if not isinstance(description, str):
            raise fail(f"{label}: field 'description': must be text")
        if "when" not in raw:
            raise fail(f"{label}: field 'when': missing")
        feats: list[str] = []
        try:
            _check_condition(raw["when"], "when", feats)
        except _FieldError as exc:
            raise fail(f"{label}: field '{exc.args[0]}': {exc.args[1]}") from None
        rules.append(Rule(name, raw["action"], description, raw["when"], feats))
    return RuleSet(rules, thresholds, source)


def rules_version(data: bytes) -> str:
    """A rules file's version: the first 12 hex digits of its SHA-256, the same on every worker."""
    return hashlib.sha256(data).hexdigest()[:12]


def parse_rules_file(data: bytes, path: str | Path) -> RuleSet:
    """A rules file's bytes, validated, with their version."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    rules = parse_rules(parse_yaml(text, str(path)), str(path))
    rules.version = rules_version(data)
    return rules


def load_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rules file ({exc.strerror or exc})") from None
    return parse_rules_file(data, path)
