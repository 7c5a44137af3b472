"""fraud.evaluation: card precision@k and the metrics of `fraud evaluate` on handmade files."""

import math
import re

import numpy as np
import orjson
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from fraud.errors import UserError
from fraud.offline.evaluation import card_precision_at_k, evaluate, format_report, scenario_rates

DAY = 86_400_000
T0 = 1767225600000  # 2026-01-01T00:00:00Z


# ------------------------------------------------------------------------------------------
# card precision@k
# ------------------------------------------------------------------------------------------


def test_card_precision_hand_example():
    # day 0: A max 0.9 (one of its payments is fraud), B 0.8 genuine, C 0.7 fraud
    #        top-2 cards = A (defrauded), B (genuine) -> 1/2
    # day 1: A 0.1 genuine, B 0.95 fraud, C 0.6 fraud, D 0.5 genuine
    #        top-2 = B, C -> 2/2
    # mean over days = 0.75
    rows = [
        (0, "A", 0.9, 0),
        (0, "A", 0.2, 1),
        (0, "B", 0.8, 0),
        (0, "C", 0.7, 1),
        (1, "A", 0.1, 0),
        (1, "B", 0.95, 1),
        (1, "B", 0.3, 0),
        (1, "C", 0.6, 1),
        (1, "D", 0.5, 0),
    ]
    days = np.array([r[0] for r in rows])
    cards = [r[1] for r in rows]
    scores = np.array([r[2] for r in rows])
    y = np.array([r[3] for r in rows])
    assert card_precision_at_k(days, cards, scores, y, k=2) == pytest.approx(0.75)
    # k=1: day 0 top card A (defrauded) -> 1; day 1 top card B (defrauded) -> 1
    assert card_precision_at_k(days, cards, scores, y, k=1) == pytest.approx(1.0)
    # k=3: day 0 A, B, C -> 2/3; day 1 B, C, D -> 2/3
    assert card_precision_at_k(days, cards, scores, y, k=3) == pytest.approx(2 / 3)


def test_card_precision_removing_detected_cards():
    """The handbook's variant: a defrauded card caught in a day's top k leaves later days' rankings."""
    rows = [
        (0, "A", 0.9, 1),
        (0, "B", 0.1, 0),
        (1, "A", 0.9, 1),
        (1, "B", 0.8, 0),
        (1, "C", 0.7, 1),
        (2, "A", 0.9, 0),
        (2, "C", 0.2, 1),
        (2, "D", 0.1, 0),
    ]
    days = np.array([r[0] for r in rows])
    cards = [r[1] for r in rows]
    scores = np.array([r[2] for r in rows])
    y = np.array([r[3] for r in rows])
    # without removal: day 0 A -> 1, day 1 A -> 1, day 2 A (genuine today) -> 0
    assert card_precision_at_k(days, cards, scores, y, k=1) == pytest.approx(2 / 3)
    # with removal: day 0 A -> 1 (detected); day 1 B -> 0; day 2 C -> 1 (A is gone)
    assert card_precision_at_k(days, cards, scores, y, k=1, remove_detected=True) == pytest.approx(2 / 3)
    # k=2 with removal: day 0 A, B -> 1/2; day 1 B, C -> 1/2 (C detected); day 2 D only -> 0
    assert card_precision_at_k(days, cards, scores, y, k=2, remove_detected=True) == pytest.approx(1 / 3)
    # k=2 without removal: day 0 A, B; day 1 A, B; day 2 A, C -> 1/2 each day
    assert card_precision_at_k(days, cards, scores, y, k=2) == pytest.approx(1 / 2)


def test_card_precision_order_independent():
    rng = np.random.default_rng(1)
    n = 200
    days = rng.integers(0, 4, n)
    cards = [f"c{i}" for i in rng.integers(0, 30, n)]
    scores = rng.random(n)
    y = (rng.random(n) < 0.2).astype(int)
    perm = rng.permutation(n)
    a = card_precision_at_k(days, cards, scores, y, k=5)
    b = card_precision_at_k(days[perm], [cards[i] for i in perm], scores[perm], y[perm], k=5)
    assert a == pytest.approx(b)
    assert 0.0 <= a <= 1.0


def test_card_precision_day_with_fewer_cards_than_k():
    """As in the handbook, the share is over k: a day with one defrauded card and k=2 gives 1/2."""
    assert card_precision_at_k(np.array([0]), ["A"], np.array([0.5]), np.array([1]), k=2) == pytest.approx(0.5)


def test_card_precision_empty():
    assert math.isnan(card_precision_at_k(np.array([], dtype=int), [], np.array([]), np.array([]), k=2))


# ------------------------------------------------------------------------------------------
# evaluate
# ------------------------------------------------------------------------------------------


def write_jsonl(path, rows):
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    return str(path)


# tx_id, card, day, score, decision, is_fraud, scenario, latency
ROWS = [
    ("t1", "A", 0, 0.95, "block", 1, "card_testing", 0.5),
    ("t2", "A", 0, 0.10, "allow", 0, None, 1.0),
    ("t3", "B", 0, 0.80, "block", 0, None, 1.5),
    ("t4", "B", 0, 0.55, "review", 1, "account_takeover", 2.0),
    ("t5", "C", 1, 0.20, "allow", 1, "card_testing", 2.5),
    ("t6", "C", 1, 0.30, "allow", 0, None, 3.0),
    ("t7", "D", 1, 0.92, "block", 1, "account_takeover", 3.5),
    ("t8", "D", 1, 0.05, "allow", 0, None, 4.0),
    ("t9", "E", 1, 0.60, "review", 0, None, 4.5),
    ("t10", "E", 1, 0.91, "block", 1, "card_testing", 5.0),
]


@pytest.fixture
def files(tmp_path):
    decisions = []
    for i, (tx, card, day, score, dec, _, _, lat) in enumerate(ROWS):
        t = T0 + day * DAY + i * 60_000
        # both event_time styles
        et = t if i % 2 else f"2026-01-0{1 + day}T00:{i:02d}:00.000Z"
        decisions.append(
            {
                "tx_id": tx,
                "card_id": card,
                "event_time": et,
                "decision": dec,
                "score": score,
                "model_score": None,
                "rules": ["r_hot"] if dec == "block" else [],
                "latency_ms": lat,
                "late": i == 3,
            }
        )
    # a decision for a transaction the labels do not know: unlabelled
    decisions.append(
        {
            "tx_id": "ghost",
            "card_id": "Z",
            "event_time": T0,
            "decision": "block",
            "score": 1.0,
            "model_score": None,
            "rules": ["r_hot"],
            "latency_ms": 100.0,
            "late": False,
        }
    )
    labels = [{"tx_id": tx, "is_fraud": f, "scenario": sc} for tx, _, _, _, _, f, sc, _ in ROWS]
    labels.append({"tx_id": "never_decided", "is_fraud": 1, "scenario": "card_testing"})
    return write_jsonl(tmp_path / "d.jsonl", decisions), write_jsonl(tmp_path / "l.jsonl", labels)


def test_evaluate_metrics(files):
    m = evaluate(*files)
    y = np.array([r[5] for r in ROWS])
    s = np.array([r[3] for r in ROWS])
    assert m["decisions"] == 11
    assert m["labelled"] == 10
    assert m["unlabelled"] == 1
    assert m["frauds"] == 5
    assert m["fraud_rate"] == pytest.approx(0.5)
    assert m["late"] == 1
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["average_precision"] == pytest.approx(average_precision_score(y, s))

    # block: t1, t3, t7, t10 (the ghost block is unlabelled and does not count)
    b = m["block"]
    assert b["alerts"] == 4 and b["true_positives"] == 3
    assert b["precision"] == pytest.approx(3 / 4)
    assert b["recall"] == pytest.approx(3 / 5)
    assert b["rate"] == pytest.approx(4 / 10)
    br = m["block_or_review"]
    assert br["alerts"] == 6 and br["true_positives"] == 4
    assert br["precision"] == pytest.approx(4 / 6)
    assert br["recall"] == pytest.approx(4 / 5)
    assert m["decision_counts"] == {"allow": 4, "review": 2, "block": 4}

    ps = m["per_scenario"]
    assert set(ps) == {"card_testing", "account_takeover"}
    assert ps["card_testing"]["frauds"] == 3
    assert ps["card_testing"]["recall_block"] == pytest.approx(2 / 3)  # t1, t10 of t1, t5, t10
    assert ps["card_testing"]["recall_block_or_review"] == pytest.approx(2 / 3)
    assert ps["account_takeover"]["frauds"] == 2
    assert ps["account_takeover"]["recall_block"] == pytest.approx(1 / 2)  # t7 of t4, t7
    assert ps["account_takeover"]["recall_block_or_review"] == pytest.approx(1.0)
    # flagged: block t1 t3 t7 t10 (legit: t3); block+review adds t4 t9 (legit: t3, t9)
    ct, ato = ps["card_testing"], ps["account_takeover"]
    assert ct["block"] == {
        "n": 3,
        "flagged": 2,
        "recall": pytest.approx(2 / 3),
        "share_of_flagged": pytest.approx(2 / 4),
        "precision": pytest.approx(2 / 3),
    }
    assert ct["block_or_review"] == {
        "n": 3,
        "flagged": 2,
        "recall": pytest.approx(2 / 3),
        "share_of_flagged": pytest.approx(2 / 6),
        "precision": pytest.approx(2 / 4),
    }
    assert ato["block"] == {
        "n": 2,
        "flagged": 1,
        "recall": pytest.approx(1 / 2),
        "share_of_flagged": pytest.approx(1 / 4),
        "precision": pytest.approx(1 / 2),
    }
    assert ato["block_or_review"] == {
        "n": 2,
        "flagged": 2,
        "recall": pytest.approx(1.0),
        "share_of_flagged": pytest.approx(2 / 6),
        "precision": pytest.approx(2 / 4),
    }

    # card precision@100 with 2-5 cards per day: day 0 A, B both defrauded -> 2/100; day 1 C, D, E -> 3/100
    assert m["card_precision_at_100"] == pytest.approx((2 / 100 + 3 / 100) / 2)

    assert m["rules"]["r_hot"]["hits"] == 4
    assert m["rules"]["r_hot"]["precision"] == pytest.approx(3 / 4)

    lat = m["latency_ms"]
    for key in ("p50", "p90", "p99", "p99.9", "max"):
        assert key in lat
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert lat["max"] == pytest.approx(100.0)  # latency is over every decision, the unlabelled one too
    all_lat = [r[7] for r in ROWS] + [100.0]
    assert lat["p50"] == pytest.approx(float(np.percentile(all_lat, 50)))


def test_format_report_mentions_the_metrics(files):
    text = format_report(evaluate(*files))
    for word in ("ROC AUC", "average precision", "card precision@100", "block", "latency"):
        assert word in text


def test_single_class_gives_no_auc(tmp_path):
    d = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "tx_id": "a",
                "card_id": "A",
                "event_time": T0,
                "decision": "allow",
                "score": 0.1,
                "rules": [],
                "latency_ms": 1.0,
                "late": False,
            }
        ],
    )
    lab = write_jsonl(tmp_path / "l.jsonl", [{"tx_id": "a", "is_fraud": 0, "scenario": None}])
    m = evaluate(d, lab)
    assert m["roc_auc"] is None and m["average_precision"] is None
    assert m["block"]["precision"] is None and m["block"]["recall"] is None


def test_no_matching_label_is_user_error(tmp_path):
    d = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "tx_id": "x",
                "card_id": "A",
                "event_time": T0,
                "decision": "allow",
                "score": 0.1,
                "rules": [],
                "latency_ms": 1.0,
                "late": False,
            }
        ],
    )
    lab = write_jsonl(tmp_path / "l.jsonl", [{"tx_id": "a", "is_fraud": 0, "scenario": None}])
    with pytest.raises(UserError):
        evaluate(d, lab)


def test_bad_json_is_user_error(tmp_path):
    d = tmp_path / "d.jsonl"
    d.write_text("{not json\n")
    lab = write_jsonl(tmp_path / "l.jsonl", [{"tx_id": "a", "is_fraud": 0, "scenario": None}])
    with pytest.raises(UserError) as exc:
        evaluate(str(d), lab)
    assert "line 1" in str(exc.value)


def test_label_without_is_fraud_is_user_error(tmp_path):
    d = write_jsonl(tmp_path / "d.jsonl", [])
    lab = write_jsonl(tmp_path / "l.jsonl", [{"tx_id": "a"}])
    with pytest.raises(UserError):
        evaluate(d, lab)


def test_missing_file_is_user_error(tmp_path):
    lab = write_jsonl(tmp_path / "l.jsonl", [{"tx_id": "a", "is_fraud": 0, "scenario": None}])
    with pytest.raises(UserError):
        evaluate(str(tmp_path / "nope.jsonl"), lab)


def test_decision_without_score_is_user_error(tmp_path):
    """A malformed decisions file is bad input: a one-line UserError, not a KeyError traceback."""
    d = write_jsonl(
        tmp_path / "d.jsonl",
        [{"tx_id": "a", "card_id": "A", "event_time": T0, "decision": "allow", "rules": [], "latency_ms": 1.0}],
    )
    lab = write_jsonl(tmp_path / "l.jsonl", [{"tx_id": "a", "is_fraud": 0, "scenario": None}])
    with pytest.raises(UserError):
        evaluate(d, lab)


# ------------------------------------------------------------------------------------------
# per scenario: recall, share of the flagged, one-vs-legitimate precision
# ------------------------------------------------------------------------------------------


def scenario_files(tmp_path, rows):
    """rows: (tx_id, decision, is_fraud, scenario) -> (decisions path, labels path)."""
    decisions = [
        {
            "tx_id": tx,
            "card_id": f"c{i}",
            "event_time": T0 + i * 60_000,
            "decision": dec,
            "score": {"allow": 0.1, "review": 0.5, "block": 0.9}[dec],
            "rules": [],
            "latency_ms": 1.0,
            "late": False,
        }
        for i, (tx, dec, _, _) in enumerate(rows)
    ]
    labels = [{"tx_id": tx, "is_fraud": f, "scenario": sc} for tx, _, f, sc in rows]
    return write_jsonl(tmp_path / "d.jsonl", decisions), write_jsonl(tmp_path / "l.jsonl", labels)


PER_SCENARIO_ROWS = [
    ("a1", "block", 1, "ct"),
    ("a2", "block", 1, "ct"),
    ("a3", "review", 1, "ct"),
    ("a4", "allow", 1, "ct"),
    ("b1", "review", 1, "ato"),
    ("b2", "allow", 1, "ato"),
    ("u1", "block", 1, None),  # a fraud no scenario names: in the flagged total, not a false alarm
    ("l1", "block", 0, None),
    ("l2", "review", 0, None),
    ("l3", "review", 0, None),
    ("l4", "allow", 0, None),
    ("l5", "allow", 0, None),
]


def test_per_scenario_hand_example(tmp_path):
    ps = evaluate(*scenario_files(tmp_path, PER_SCENARIO_ROWS))["per_scenario"]
    assert set(ps) == {"ct", "ato"}
    # block flags a1 a2 u1 l1: 4 flagged, 1 of them legitimate (l1)
    # block+review flags a1 a2 a3 b1 u1 l1 l2 l3: 8 flagged, 3 legitimate (l1 l2 l3)
    # ct (a1-a4, n 4): block 2 flagged -> recall 2/4, share 2/4, precision 2/(2+1)
    #                  block+review 3 -> recall 3/4, share 3/8, precision 3/(3+3)
    assert ps["ct"]["block"] == {
        "n": 4,
        "flagged": 2,
        "recall": 0.5,
        "share_of_flagged": 0.5,
        "precision": pytest.approx(2 / 3),
    }
    assert ps["ct"]["block_or_review"] == {
        "n": 4,
        "flagged": 3,
        "recall": 0.75,
        "share_of_flagged": 0.375,
        "precision": 0.5,
    }
    # ato (b1 b2, n 2): block 0 flagged -> recall 0, share 0/4, precision 0/(0+1)
    #                   block+review 1 -> recall 1/2, share 1/8, precision 1/(1+3)
    assert ps["ato"]["block"] == {"n": 2, "flagged": 0, "recall": 0.0, "share_of_flagged": 0.0, "precision": 0.0}
    assert ps["ato"]["block_or_review"] == {
        "n": 2,
        "flagged": 1,
        "recall": 0.5,
        "share_of_flagged": 0.125,
        "precision": 0.25,
    }
    # the keys from before the per-flag breakdown are still there, with the same meaning
    assert ps["ct"]["frauds"] == 4 and ps["ato"]["frauds"] == 2
    assert ps["ct"]["recall_block"] == 0.5 and ps["ct"]["recall_block_or_review"] == 0.75
    assert ps["ct"]["share_of_blocks"] == 0.5 and ps["ato"]["share_of_blocks"] == 0.0


def test_per_scenario_zero_denominators_are_null(tmp_path):
    rows = [("x1", "review", 1, "ct"), ("x2", "allow", 1, "ato"), ("x3", "allow", 0, None)]
    m = evaluate(*scenario_files(tmp_path, rows))
    ps = m["per_scenario"]
    # nothing blocked: share 0/0 and precision 0/(0+0) are undefined; recall 0/1 is 0
    assert ps["ct"]["block"] == {"n": 1, "flagged": 0, "recall": 0.0, "share_of_flagged": None, "precision": None}
    assert ps["ct"]["share_of_blocks"] == 0.0  # old key keeps its old value
    # block+review flags only x1 (no legitimate one): ct precision 1/(1+0), ato precision 0/(0+0)
    assert ps["ct"]["block_or_review"] == {
        "n": 1,
        "flagged": 1,
        "recall": 1.0,
        "share_of_flagged": 1.0,
        "precision": 1.0,
    }
    assert ps["ato"]["block_or_review"] == {
        "n": 1,
        "flagged": 0,
        "recall": 0.0,
        "share_of_flagged": 0.0,
        "precision": None,
    }
    dumped = orjson.loads(orjson.dumps(m))["per_scenario"]
    assert dumped["ct"]["block"]["precision"] is None and dumped["ct"]["block"]["share_of_flagged"] is None

    lines = format_report(m).splitlines()
    ct_line = next(line for line in lines if line.split()[:1] == ["ct"])
    ato_line = next(line for line in lines if line.split()[:1] == ["ato"])
    # n, then recall precision share for block and for block+review
    assert ct_line.split() == ["ct", "1", "0.0%", "-", "-", "100.0%", "100.0%", "100.0%"]
    assert ato_line.split() == ["ato", "1", "0.0%", "-", "-", "0.0%", "-", "0.0%"]


def test_scenario_rates_empty_scenario_has_no_recall():
    r = scenario_rates(np.array([True, False]), np.array([False, False]), np.array([0, 0]))
    assert r == {"n": 0, "flagged": 0, "recall": None, "share_of_flagged": 0.0, "precision": 0.0}


def test_report_per_scenario_table_is_aligned_and_has_the_legend(tmp_path):
    rows = PER_SCENARIO_ROWS + [("z1", "block", 1, "a_scenario_name_longer_than_the_default_column")]
    text = format_report(evaluate(*scenario_files(tmp_path, rows)))
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("per scenario"))
    assert "precision" in lines[start] and "flagged legit" in lines[start] and "only fraud" in lines[start]
    header, body = lines[start + 2], lines[start + 3 : start + 6]
    assert header.split() == ["scenario", "n"] + ["recall", "precision", "share"] * 2
    assert [line.split()[0] for line in body] == ["a_scenario_name_longer_than_the_default_column", "ato", "ct"]

    # every number column is right-aligned under its header
    def ends(line):
        return [m.end() for m in re.finditer(r"\S+", line)][1:]

    for line in body:
        assert ends(line) == ends(header)


def test_plots_need_both_labels_for_curves_and_skip_nothing_else(files, tmp_path):
    m = evaluate(*files, plots_dir=str(tmp_path / "figs"))
    names = sorted(p.rsplit("/", 1)[1] for p in m["plots"])
    assert names == ["block_rate.png", "latency.png", "precision_recall.png", "roc.png", "score_histogram.png"]
    assert all((tmp_path / "figs" / n).stat().st_size > 5_000 for n in names)
