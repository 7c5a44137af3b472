"""Rules from YAML (SPEC.md section 4): validated as a whole on load, compiled once to closures.

Rules are data: a condition tree becomes nested closures over feature slots, never `eval`.
Comparisons with a missing feature value (NaN) are false, so `not` of one is true: write rules
with that in mind (documented in the README).
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ConfigError
from .features import MAX_WINDOW_DAYS, MAX_WINDOW_MS, is_known, parse_window
from .yaml_files import parse_yaml

ACTIONS = ("allow", "review", "block")
SEVERITY = {a: i for i, a in enumerate(ACTIONS)}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_NAME_RE = re.compile(r"^[a-z0-9_]+$")
Condition = Callable[[list], bool]


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

    @property
    def features(self) -> list[str]:
        return list(dict.fromkeys(f for r in self.rules for f in r.features))

    def bind(self, index: dict[str, int]) -> list[tuple[str, int, Condition]]:
        """Compile every rule against a feature plan's slots: (name, severity, test)."""
        return [(r.name, SEVERITY[r.action], _compile(r.when, index)) for r in self.rules]


def _compile(cond: dict, index: dict[str, int]) -> Condition:
    if "feature" in cond:
        slot = index[cond["feature"]]
        value = float(cond["value"])
        if cond["op"] == "!=":  # a missing value (NaN) fails every comparison, `!=` included
            return lambda v: (x := v[slot]) == x and x != value
        op = _OPS[cond["op"]]
        return lambda v: op(v[slot], value)
    key, arg = next(iter(cond.items()))
    if key == "not":
        inner = _compile(arg, index)
        return lambda v: not inner(v)
    parts = tuple(_compile(c, index) for c in arg)
    if key == "all":
        def all_of(v: list) -> bool:
            for p in parts:
                if not p(v):
                    return False
            return True
        return all_of

    def any_of(v: list) -> bool:
        for p in parts:
            if p(v):
                return True
        return False
    return any_of


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
            raise _FieldError(f"{where}.feature", f"unknown feature {feat!r} (see the README's feature list)")
        window = parse_window(feat)
        if window is not None and window[1] > MAX_WINDOW_MS:
            raise _FieldError(f"{where}.feature", f"window of {feat!r} is longer than {MAX_WINDOW_DAYS} days "
                                                  "(each card's history is kept that long)")
        if cond.get("op") not in _OPS:
            raise _FieldError(f"{where}.op", f"must be one of {' '.join(_OPS)}, got {cond.get('op')!r}")
        value = cond.get("value")
        if type(value) not in (int, float) or not math.isfinite(float(value) if abs(value) < 1e308 else math.inf):
            raise _FieldError(f"{where}.value", f"must be a finite number, got {value!r}")
        feats.append(feat)
        return
    if len(cond) != 1 or next(iter(cond)) not in ("all", "any", "not"):
        raise _FieldError(f"{where}", f"expected {{feature, op, value}} or one of all/any/not, got keys "
                         f"{sorted(map(str, cond))}")
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
        raise fail("top level must be a mapping with 'rules' (and optional 'thresholds')"
                   + (": the file is empty" if doc is None else ""))
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
            raise fail(f"{label}: field 'action': must be one of block, review, allow, "
                       f"got {raw.get('action')!r}")
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


def load_rules(path: str | Path) -> RuleSet:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read rules file ({exc.strerror or exc})") from None
    return parse_rules(parse_yaml(text, str(path)), str(path))
