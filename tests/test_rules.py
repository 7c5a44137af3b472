"""Rules YAML (SPEC section 4): validation messages and condition semantics."""

import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from fraud.core import score_kernel as K
from fraud.errors import ConfigError, UserError
from fraud.scoring.features import FeaturePlan
from fraud.scoring.rules import ACTIONS, RuleSet, load_rules, parse_rules

ROOT = Path(__file__).resolve().parent.parent
NAN = float("nan")


def rule(name="r1", action="block", when=None, **extra):
    r = {
        "name": name,
        "action": action,
        "when": when if when is not None else {"feature": "amount", "op": ">", "value": 1},
    }
    r.update(extra)
    return r


def refuse(doc, *parts, source="rules.yaml"):
    with pytest.raises(ConfigError) as exc:
        parse_rules(doc, source)
    msg = str(exc.value)
    assert msg.startswith(source), msg
    for p in parts:
        assert p in msg, f"{p!r} not in {msg!r}"
    assert "\n" not in msg
    return msg


# ------------------------------------------------------------------------------------------
# loading
# ------------------------------------------------------------------------------------------


def test_shipped_rules_load():
    rs = load_rules(ROOT / "config" / "rules.yaml")
    assert isinstance(rs, RuleSet)
    assert len(rs.rules) >= 1
    names = [r.name for r in rs.rules]
    assert len(names) == len(set(names))
    assert all(r.action in ACTIONS for r in rs.rules)
    # compiles against a plan of exactly its features
    plan = FeaturePlan(rs.features)
    program = rs.program(plan.index)
    assert program.names == names
    assert len(program.spans) == len(names) + 1 and program.spans[-1] == len(program.code)


def test_no_rules_only_when_said_so():
    """`rules: []` decides with the model alone; an emptied file or a missing `rules:` is refused."""
    assert parse_rules({"rules": []}).rules == []
    refuse(None, "empty")
    refuse({"thresholds": {"block": 0.9}}, "rules: missing", "rules: []")


def test_config_error_is_user_error():
    assert issubclass(ConfigError, UserError)


# ------------------------------------------------------------------------------------------
# validation: every error names the file, the rule and the field
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["Card_Testing", "card-testing", "card testing", "", 12, None, "é"])
def test_bad_name(name):
    refuse({"rules": [rule(name=name)]}, "rule #1", "name")


def test_bad_name_names_position():
    refuse({"rules": [rule("ok"), rule("Not-Ok")]}, "rule #2", "name", "Not-Ok")


def test_name_with_trailing_newline_refused():
    """`[a-z0-9_]+` must match the whole name: `$` also matches before a final newline."""
    refuse({"rules": [rule(name="card_testing\n")]}, "name")


def test_duplicate_name():
    refuse({"rules": [rule("dup"), rule("other"), rule("dup")]}, "'dup'", "name", "duplicate")


@pytest.mark.parametrize("action", ["kill", "BLOCK", None, 1, ""])
def test_unknown_action(action):
    refuse({"rules": [rule("r1", action=action)]}, "'r1'", "action")


def test_unknown_feature_path():
    when = {"all": [{"feature": "amount", "op": ">", "value": 1}, {"feature": "count_90x", "op": ">=", "value": 3}]}
    refuse({"rules": [rule("burst", when=when)]}, "'burst'", "when.all[1].feature", "count_90x")


def test_unknown_feature_nested_path():
    when = {
        "any": [
            {"feature": "amount", "op": ">", "value": 1},
            {
                "not": {
                    "all": [
                        {"feature": "amount", "op": ">", "value": 1},
                        {"feature": "median_1h", "op": ">", "value": 1},
                    ]
                }
            },
        ]
    }
    refuse({"rules": [rule("deep", when=when)]}, "'deep'", "when.any[1].not.all[1].feature", "median_1h")


@pytest.mark.parametrize(
    "feature",
    [
        "count_90x",
        "median_1h",
        "count_0m",
        "count_10",
        "count10m",
        "Count_10m",
        "sum_24H",
        "amount ",
        "distinct_merchant_24h",
        3,
        None,
    ],
)
def test_unknown_features_refused(feature):
    refuse({"rules": [rule("f", when={"feature": feature, "op": ">", "value": 1})]}, "'f'", "when.feature")


@pytest.mark.parametrize(
    "feature",
    [
        "count_90m",
        "count_10m",
        "sum_24h",
        "avg_30d",
        "min_1h",
        "max_45s",
        "distinct_merchants_7d",
        "amount",
        "secs_since_prev",
        "speed_kmh",
        "dist_prev_km",
        "new_merchant",
        "amount_z_30d",
    ],
)
def test_known_features_accepted(feature):
    rs = parse_rules({"rules": [rule("f", when={"feature": feature, "op": ">=", "value": 1})]})
    assert rs.features == [feature]
    plan = FeaturePlan(rs.features)  # the plan gets exactly what the rule names (SPEC 4)
    assert feature in plan.index


@pytest.mark.parametrize("op", ["=", "=>", "gt", "<>", "", None, "in"])
def test_bad_op(op):
    refuse({"rules": [rule("o", when={"feature": "amount", "op": op, "value": 1})]}, "'o'", "when.op")


@pytest.mark.parametrize("value", ["5", "1e3", None, True, [1], {"x": 1}, NAN, math.inf])
def test_non_numeric_value(value):
    refuse({"rules": [rule("v", when={"feature": "amount", "op": ">", "value": value})]}, "'v'", "when.value")


def test_huge_integer_value_is_config_error():
    """A YAML integer too large for a float must be a ConfigError, not an OverflowError traceback."""
    refuse({"rules": [rule("v", when={"feature": "amount", "op": ">", "value": 10**400})]}, "'v'", "when.value")


@pytest.mark.parametrize("key", ["all", "any"])
def test_empty_combination(key):
    refuse({"rules": [rule("e", when={key: []})]}, "'e'", f"when.{key}")


@pytest.mark.parametrize("key", ["all", "any"])
def test_combination_not_a_list(key):
    refuse({"rules": [rule("e", when={key: {"feature": "amount", "op": ">", "value": 1}})]}, "'e'", f"when.{key}")


def test_condition_not_a_mapping():
    refuse({"rules": [rule("m", when={"all": ["amount > 1"]})]}, "'m'", "when.all[0]")


def test_two_combinators_in_one_condition():
    refuse(
        {
            "rules": [
                rule(
                    "two",
                    when={
                        "all": [{"feature": "amount", "op": ">", "value": 1}],
                        "any": [{"feature": "amount", "op": ">", "value": 1}],
                    },
                )
            ]
        },
        "'two'",
        "when",
    )


def test_unknown_key_in_condition():
    refuse(
        {"rules": [rule("k", when={"feature": "amount", "op": ">", "value": 1, "unit": "eur"})]}, "'k'", "when", "unit"
    )


def test_unknown_combinator():
    refuse({"rules": [rule("k", when={"none": [{"feature": "amount", "op": ">", "value": 1}]})]}, "'k'", "when", "none")


def test_unknown_key_in_rule():
    refuse({"rules": [rule("k", severity=3)]}, "'k'", "severity")


def test_unknown_top_level_key():
    refuse({"rules": [rule()], "rulez": []}, "rulez")


def test_missing_when():
    r = rule("w")
    del r["when"]
    refuse({"rules": [r]}, "'w'", "when")


def test_description_must_be_text():
    refuse({"rules": [rule("d", description=["x"])]}, "'d'", "description")


@pytest.mark.parametrize("doc", [[rule()], "rules", 5])
def test_top_level_not_mapping(doc):
    refuse(doc)


def test_rules_not_a_list():
    refuse({"rules": {"r1": rule()}}, "rules")


def test_rule_not_a_mapping():
    refuse({"rules": ["r1"]}, "rule #1")


@pytest.mark.parametrize(
    "thresholds, part",
    [
        ({"review": 1.5}, "thresholds.review"),
        ({"block": -0.1}, "thresholds.block"),
        ({"review": "0.5"}, "thresholds.review"),
        ({"block": True}, "thresholds.block"),
        ({"review": NAN}, "thresholds.review"),
        ({"review": 0.9, "block": 0.5}, "review must be <= block"),
        ({"review": 0.5, "reject": 0.7}, "thresholds"),
        ([0.5, 0.9], "thresholds"),
    ],
)
def test_bad_thresholds(thresholds, part):
    refuse({"thresholds": thresholds, "rules": []}, part)


def test_good_thresholds():
    rs = parse_rules({"thresholds": {"review": 0.3, "block": 0.3}, "rules": []})
    assert rs.thresholds == {"review": 0.3, "block": 0.3}
    assert parse_rules({"thresholds": {"block": 1}, "rules": []}).thresholds == {"block": 1.0}


def test_whole_file_refused_on_one_error():
    """A file with an error is refused as a whole: the good rules before it do not load."""
    with pytest.raises(ConfigError):
        parse_rules({"rules": [rule("good"), rule("bad", action="nope")]})


# ------------------------------------------------------------------------------------------
# load_rules: files
# ------------------------------------------------------------------------------------------


def test_invalid_yaml_names_line(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text(
        "rules:\n  - name: a\n    action: block\n    when: {feature: amount, op: '>', value: 1\n  - name: b\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_rules(p)
    msg = str(exc.value)
    assert str(p) in msg
    assert "invalid YAML" in msg
    assert re.search(r"line \d+", msg), msg
    assert "\n" not in msg


def test_invalid_yaml_line_number_is_right(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("rules:\n  - name: a\n\taction: block\n", encoding="utf-8")  # tab on line 3
    with pytest.raises(ConfigError) as exc:
        load_rules(p)
    assert "line 3" in str(exc.value)


def test_repeated_key_is_refused_at_its_line(tmp_path):
    """YAML 1.1 keeps the last of two equal keys without a word: an analyst's copy-paste slip."""
    p = tmp_path / "dup.yaml"
    p.write_text(
        "rules:\n  - name: r1\n    name: r2\n    action: block\n    when: {feature: amount, op: '>', value: 1}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_rules(p)
    assert "duplicate key 'name'" in str(exc.value) and "line 3" in str(exc.value)


def test_exponent_without_a_dot_is_a_number(tmp_path):
    p = tmp_path / "e.yaml"
    p.write_text(
        "rules:\n  - name: big\n    action: review\n    when: {feature: amount, op: '>', value: 1e4}\n",
        encoding="utf-8",
    )
    assert load_rules(p).rules[0].when["value"] == 10_000.0


def test_window_longer_than_the_kept_history_is_refused():
    parse_rules({"rules": [rule("y", when={"feature": "count_366d", "op": ">", "value": 1})]})
    refuse(
        {"rules": [rule("w", when={"feature": "count_99999d", "op": ">", "value": 1})]},
        "'w'",
        "when.feature",
        "366 days",
    )


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as exc:
        load_rules(p)
    assert str(p) in str(exc.value)


def test_validation_error_from_file_names_file(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(
        yaml.safe_dump(
            {
                "rules": [
                    rule(
                        "x",
                        when={
                            "all": [
                                {"feature": "amount", "op": ">", "value": 1},
                                {"feature": "count_90x", "op": ">", "value": 1},
                            ]
                        },
                    )
                ]
            }
        ),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as exc:
        load_rules(p)
    msg = str(exc.value)
    assert msg.startswith(str(p)) and "'x'" in msg and "when.all[1].feature" in msg and "count_90x" in msg


def test_spec_example_loads(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text(
        """
thresholds:
  review: 0.5
  block: 0.9
rules:
  - name: card_testing
    description: many small payments within minutes
    when:
      all:
        - {feature: count_10m, op: ">=", value: 5}
        - {feature: amount, op: "<", value: 5}
    action: block
""",
        encoding="utf-8",
    )
    rs = load_rules(p)
    assert rs.thresholds == {"review": 0.5, "block": 0.9}
    assert rs.features == ["count_10m", "amount"]
    assert rs.source == str(p)


# ------------------------------------------------------------------------------------------
# semantics
# ------------------------------------------------------------------------------------------


def compile_one(when, extra=()):
    rs = parse_rules({"rules": [rule("r", when=when)]})
    plan = FeaturePlan(list(extra) + rs.features)
    prog = rs.program(plan.index)
    assert prog.names == ["r"] and prog.severity.tolist() == [ACTIONS.index("block")]

    def run(**values):
        X = np.array([plan.new_vector()])
        for k, x in values.items():
            X[0, plan.index[k]] = x
        fired = np.zeros((1, 1), dtype=np.bool_)
        K.rules(
            0, X, prog.code, prog.consts, prog.spans, prog.severity, np.empty(len(prog.code), dtype=np.bool_), fired
        )
        return bool(fired[0, 0])

    return run


def C(feature, op, value):
    return {"feature": feature, "op": op, "value": value}


@pytest.mark.parametrize(
    "op, x, expected",
    [
        ("<", 4, True),
        ("<", 5, False),
        ("<=", 5, True),
        ("<=", 6, False),
        (">", 6, True),
        (">", 5, False),
        (">=", 5, True),
        (">=", 4, False),
        ("==", 5, True),
        ("==", 5.0001, False),
        ("!=", 4, True),
        ("!=", 5, False),
    ],
)
def test_ops(op, x, expected):
    assert compile_one(C("amount", op, 5))(amount=x) is expected


def test_nested_all_any_not():
    # block when count_10m >= 3 and (amount < 3 or not (sum_1h <= 100))
    run = compile_one(
        {"all": [C("count_10m", ">=", 3), {"any": [C("amount", "<", 3), {"not": C("sum_1h", "<=", 100)}]}]}
    )
    assert run(count_10m=3, amount=1, sum_1h=50) is True
    assert run(count_10m=3, amount=10, sum_1h=150) is True
    assert run(count_10m=3, amount=10, sum_1h=100) is False
    assert run(count_10m=2, amount=1, sum_1h=500) is False
    assert run(count_10m=5, amount=3, sum_1h=0) is False


def test_not_of_not():
    run = compile_one({"not": {"not": C("amount", ">", 10)}})
    assert run(amount=11) is True
    assert run(amount=10) is False


def test_any_single_and_all_single():
    assert compile_one({"any": [C("amount", ">", 1)]})(amount=2) is True
    assert compile_one({"all": [C("amount", ">", 1)]})(amount=0) is False


def test_binds_to_slots_of_a_larger_plan():
    """Slots come from the plan's index, whatever order the plan has its features in."""
    run = compile_one(
        {"all": [C("max_10m", "<", 5), C("amount", ">", 1)]}, extra=["sum_24h", "count_10m", "secs_since_prev"]
    )
    assert run(max_10m=4, amount=2, sum_24h=1e9, count_10m=100) is True
    assert run(max_10m=6, amount=2) is False


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_nan_comparisons_are_false(op):
    """rules.py docstring / config/rules.yaml: a missing feature (NaN) makes every comparison false,
    `!=` included (Python's `nan != x` is True)."""
    run = compile_one(C("secs_since_prev", op, 0))
    assert run(secs_since_prev=NAN) is False


def test_not_of_nan_comparison_is_true():
    assert compile_one({"not": C("secs_since_prev", "<", 60)})(secs_since_prev=NAN) is True


def test_nan_inside_all_any():
    run = compile_one({"any": [C("secs_since_prev", "<", 60), C("amount", ">", 100)]})
    assert run(secs_since_prev=NAN, amount=50) is False
    assert run(secs_since_prev=NAN, amount=500) is True


def test_action_severity_order():
    rs = parse_rules({"rules": [rule("a", action="allow"), rule("b", action="review"), rule("c", action="block")]})
    plan = FeaturePlan(rs.features)
    prog = rs.program(plan.index)
    sev = dict(zip(prog.names, prog.severity.tolist()))
    assert sev["a"] < sev["b"] < sev["c"]


def test_features_deduplicated_in_order():
    rs = parse_rules(
        {
            "rules": [
                rule("a", when={"all": [C("count_90m", ">", 1), C("amount", ">", 1)]}),
                rule("b", when={"any": [C("amount", "<", 1), C("sum_2h", ">", 1)]}),
            ]
        }
    )
    assert rs.features == ["count_90m", "amount", "sum_2h"]


def test_no_eval_anywhere_in_the_package():
    """Rules, models and config are data: no module of the package evaluates text as code."""
    for path in (ROOT / "fraud").rglob("*.py"):
        src = path.read_text(encoding="utf-8")
        assert not re.search(r"\beval\s*\(", src), path
        assert not re.search(r"\bexec\s*\(", src), path
        assert not re.search(r"(?<![\w.])compile\s*\(", src), path  # builtin compile(); re.compile is fine
        assert "__import__" not in src, path
