"""Independent ("foreign") transaction simulator used to test that the detector accepts any
stream that follows SPEC.md section 1, not just the one written by the project's own simulator.

It re-implements, with numpy only, the transaction data simulator described in chapter 3 of the
public handbook "Reproducible Machine Learning for Credit Card Fraud Detection - Practical
Handbook" (Le Borgne et al.):

* customers: home (x, y) uniform in [0, 100]^2, mean_amount ~ U(5, 100), std_amount = mean / 2,
  mean_nb_tx_per_day ~ U(0, 4); terminals: (x, y) uniform in [0, 100]^2; a customer uses the
  terminals strictly within radius r = 5 of home (customers with none make no transaction);
* per day and customer: nb_tx ~ Poisson(mean_nb_tx_per_day); time of day ~ N(43200, 20000) s,
  truncated to an integer and kept only if in [0, 86400) (as in the handbook, out-of-range draws
  are dropped); amount ~ N(mean, std), negative draws replaced by U(0, 2 * mean), rounded to cents;
  terminal uniform among the customer's terminals;
* fraud scenarios, applied in this order (a later one overwrites the scenario name):
  1. ``amount_over_220``: every transaction with amount > 220;
  2. ``compromised_terminal``: each day, 2 random terminals become compromised for 28 days
     (that day included); all their transactions in that period are fraud;
  3. ``compromised_customer``: each day, 3 random customers become compromised for 14 days; 1/3 of
     their transactions in that period (drawn without replacement) get amount * 5 and are fraud.

The "2 terminals / 3 customers per day" of the handbook are meant for 10000 terminals and 5000
customers. For smaller populations the daily numbers are scaled (2 per 10000 terminals, 3 per
5000 customers, spread deterministically over the days with integer arithmetic, at least one on
day 0) so that the fraud rate stays in the handbook's range (a few tenths of a percent to about
1 %); at the default sizes it is exactly 2 and 3 per day.

The output deliberately differs in style from the project's own simulator: ``event_time`` is an
integer of epoch milliseconds, ids are ``customer_<n>`` / ``terminal_<n>`` / the handbook's
TRANSACTION_ID as a string, no optional field is written, and unknown extra fields
(``TX_TIME_SECONDS``, ``TX_TIME_DAYS``, ``source``) are present and must be ignored by consumers.
Records are written in event-time order. Same arguments -> same bytes.

    python -m tests.foreign_sim --out TX --labels L [--feedback FB] [--customers N]
        [--terminals N] [--days D] [--seed S] [--start YYYY-MM-DD]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Iterator

import numpy as np

RADIUS = 5.0
DAY_S = 86400
DAY_MS = DAY_S * 1000
FEEDBACK_DELAY_MS = 7 * DAY_MS
TERMINAL_COMPROMISE_DAYS = 28
CUSTOMER_COMPROMISE_DAYS = 14
SCENARIOS = (None, "amount_over_220", "compromised_terminal", "compromised_customer")


# --------------------------------------------------------------------------------------------
# simulation (columnar)
# --------------------------------------------------------------------------------------------


def _start_ms(start) -> int:
    if isinstance(start, _dt.datetime):
        d = start if start.tzinfo else start.replace(tzinfo=_dt.UTC)
    elif isinstance(start, _dt.date):
        d = _dt.datetime(start.year, start.month, start.day, tzinfo=_dt.UTC)
    else:
        d = _dt.datetime.fromisoformat(str(start))
        if d.tzinfo is None:
            d = d.replace(tzinfo=_dt.UTC)
    return int(round(d.timestamp() * 1000))


def _available_terminals(cx, cy, tx_, ty_, r=RADIUS):
    """CSR lists of terminal indices strictly within radius r of each customer."""
    offsets = np.zeros(len(cx) + 1, dtype=np.int64)
    chunks = []
    step = max(1, 2_000_000 // max(1, len(tx_)))
    for lo in range(0, len(cx), step):
        hi = min(len(cx), lo + step)
        d2 = (cx[lo:hi, None] - tx_[None, :]) ** 2 + (cy[lo:hi, None] - ty_[None, :]) ** 2
        rows, cols = np.nonzero(d2 < r * r)  # row-major: sorted by customer, then terminal
        chunks.append(cols.astype(np.int64))
        offsets[lo + 1 : hi + 1] = np.cumsum(np.bincount(rows, minlength=hi - lo))
        offsets[lo + 1 : hi + 1] += offsets[lo]
    flat = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return offsets, flat


def _daily_counts(days: int, per_day_num: int, per_day_den: int) -> np.ndarray:
    """Integer count per day whose running total after day d is ceil((d + 1) * num / den): exact
    at integer rates (2 and 3 at default sizes); otherwise spread evenly, the first on day 0."""
    d = np.arange(days + 1, dtype=np.int64)
    cum = -((-d * per_day_num) // per_day_den)
    return np.diff(cum)


def simulate(n_customers=5000, n_terminals=10000, days=183, seed=0, start="2018-04-01"):
    """Columnar simulation. Returns a dict of numpy arrays, sorted by event time."""
    n_customers, n_terminals, days = int(n_customers), int(n_terminals), int(days)
    if n_customers < 1 or n_terminals < 1 or days < 1:
        raise ValueError("customers, terminals and days must be >= 1")
    ss_prof, ss_tx, ss_term, ss_cust = np.random.SeedSequence(int(seed)).spawn(4)

    # profiles
    rng = np.random.default_rng(ss_prof)
    cx = rng.uniform(0, 100, n_customers)
    cy = rng.uniform(0, 100, n_customers)
    mean_amount = rng.uniform(5, 100, n_customers)
    std_amount = mean_amount / 2
    mean_nb = rng.uniform(0, 4, n_customers)
    tx_ = rng.uniform(0, 100, n_terminals)
    ty_ = rng.uniform(0, 100, n_terminals)
    offsets, flat = _available_terminals(cx, cy, tx_, ty_)
    n_avail = np.diff(offsets)

    # transactions, vectorised per day
    rng = np.random.default_rng(ss_tx)
    cust_ids = np.arange(n_customers)
    parts_c, parts_s, parts_a, parts_t = [], [], [], []
    for day in range(days):
        nb = rng.poisson(mean_nb)
        c = np.repeat(cust_ids, nb)
        n = len(c)
        t = np.trunc(rng.normal(DAY_S / 2, 20000, n))
        amt = rng.normal(mean_amount[c], std_amount[c])
        neg = amt < 0
        amt[neg] = rng.uniform(0, 2 * mean_amount[c[neg]])
        amt = np.round(amt, 2)
        u = rng.random(n)
        keep = (t >= 0) & (t < DAY_S) & (n_avail[c] > 0)
        c, t, amt, u = c[keep], t[keep], amt[keep], u[keep]
        k = np.minimum((u * n_avail[c]).astype(np.int64), n_avail[c] - 1)
        parts_c.append(c)
        parts_s.append(t.astype(np.int64) + day * DAY_S)
        parts_a.append(amt)
        parts_t.append(flat[offsets[c] + k])
    cust = np.concatenate(parts_c).astype(np.int64)
    secs = np.concatenate(parts_s).astype(np.int64)
    amount = np.concatenate(parts_a).astype(np.float64)
    term = np.concatenate(parts_t).astype(np.int64)

    # sort by time (stable: ties keep generation order) -> TRANSACTION_ID = position
    order = np.argsort(secs, kind="stable")
    cust, secs, amount, term = cust[order], secs[order], amount[order], term[order]
    day_of = secs // DAY_S
    n_tx = len(secs)
    fraud = np.zeros(n_tx, dtype=np.int8)
    scenario = np.zeros(n_tx, dtype=np.int8)

    # scenario 1
    m = amount > 220
    fraud[m] = 1
    scenario[m] = 1

    # scenario 2: compromised terminals (2 per day per 10000 terminals)
    rng = np.random.default_rng(ss_term)
    k_term = _daily_counts(days, 2 * n_terminals, 10000)
    comp = np.zeros((days + 1, n_terminals), dtype=np.int32)
    for day in range(days):
        if k_term[day]:
            chosen = rng.choice(n_terminals, size=min(int(k_term[day]), n_terminals), replace=False)
            comp[day + 1, chosen] = 1
    cs = np.cumsum(comp, axis=0)  # cs[d + 1] = compromises on days <= d
    lo = np.maximum(day_of + 1 - TERMINAL_COMPROMISE_DAYS, 0)
    active = (cs[day_of + 1, term] - cs[lo, term]) > 0  # compromised on a day in (day-28, day]
    fraud[active] = 1
    scenario[active] = 2

    # scenario 3: compromised customers (3 per day per 5000 customers)
    rng = np.random.default_rng(ss_cust)
    k_cust = _daily_counts(days, 3 * n_customers, 5000)
    by_cust = np.argsort(cust, kind="stable")  # tx indices grouped by customer, in time order
    c_off = np.searchsorted(cust[by_cust], np.arange(n_customers + 1))
    for day in range(days):
        if not k_cust[day]:
            continue
        chosen = np.sort(rng.choice(n_customers, size=min(int(k_cust[day]), n_customers), replace=False))
        idx = np.concatenate([by_cust[c_off[c] : c_off[c + 1]] for c in chosen])
        idx = np.sort(idx[(day_of[idx] >= day) & (day_of[idx] < day + CUSTOMER_COMPROMISE_DAYS)])
        n_pick = len(idx) // 3
        if n_pick:
            pick = np.sort(rng.choice(idx, size=n_pick, replace=False))
            amount[pick] = np.round(amount[pick] * 5, 2)
            fraud[pick] = 1
            scenario[pick] = 3

    return {
        "tx_id": np.arange(n_tx, dtype=np.int64),
        "customer": cust,
        "terminal": term,
        "amount": amount,
        "seconds": secs,
        "day": day_of,
        "event_time": _start_ms(start) + secs * 1000,
        "is_fraud": fraud,
        "scenario": scenario,
    }


# --------------------------------------------------------------------------------------------
# records
# --------------------------------------------------------------------------------------------


def _iter_records(cols) -> Iterator[tuple[dict, dict]]:
    cols_l = {k: v.tolist() for k, v in cols.items()}  # plain Python ints / floats
    for i, c, t, a, s, d, et, f, sc in zip(
        cols_l["tx_id"],
        cols_l["customer"],
        cols_l["terminal"],
        cols_l["amount"],
        cols_l["seconds"],
        cols_l["day"],
        cols_l["event_time"],
        cols_l["is_fraud"],
        cols_l["scenario"],
    ):
        tx_id = str(i)
        tx = {
            "tx_id": tx_id,
            "card_id": f"customer_{c}",
            "merchant_id": f"terminal_{t}",
            "amount": a,
            "event_time": et,
            # unknown extra fields: consumers must ignore them
            "TX_TIME_SECONDS": s,
            "TX_TIME_DAYS": d,
            "source": "handbook",
        }
        label = {"tx_id": tx_id, "is_fraud": f, "scenario": SCENARIOS[sc]}
        yield tx, label


def generate(n_customers=5000, n_terminals=10000, days=183, seed=0, start="2018-04-01"):
    """Return (transactions, labels): two lists of dicts, transactions in event-time order."""
    txs, labels = [], []
    for tx, lab in _iter_records(simulate(n_customers, n_terminals, days, seed, start)):
        txs.append(tx)
        labels.append(lab)
    return txs, labels


def feedback_records(transactions, labels):
    """Confirmed-fraud reports, reported 7 days after the transaction, sorted by reported_at."""
    out = [
        {
            "tx_id": tx["tx_id"],
            "card_id": tx["card_id"],
            "merchant_id": tx["merchant_id"],
            "event_time": tx["event_time"],
            "reported_at": tx["event_time"] + FEEDBACK_DELAY_MS,
        }
        for tx, lab in zip(transactions, labels)
        if lab["is_fraud"]
    ]
    out.sort(key=lambda r: r["reported_at"])  # stable
    return out


def _dump(rec) -> str:
    return json.dumps(rec, separators=(", ", ": ")) + "\n"


def _fast_lines(cols):
    """(tx_line, label_line, feedback_line or None) per record, byte-identical to _dump of the
    dicts from _iter_records (checked by the tests) but ~10x faster than json.dumps."""
    cols_l = {k: v.tolist() for k, v in cols.items()}
    lab_tail = ['"is_fraud": 0, "scenario": null}\n'] + [
        f'"is_fraud": 1, "scenario": "{name}"}}\n' for name in SCENARIOS[1:]
    ]
    for i, c, t, a, s, d, et, f, sc in zip(
        cols_l["tx_id"],
        cols_l["customer"],
        cols_l["terminal"],
        cols_l["amount"],
        cols_l["seconds"],
        cols_l["day"],
        cols_l["event_time"],
        cols_l["is_fraud"],
        cols_l["scenario"],
    ):
        ids = f'{{"tx_id": "{i}", "card_id": "customer_{c}", "merchant_id": "terminal_{t}", '
        tx = (
            f'{ids}"amount": {a!r}, "event_time": {et}, "TX_TIME_SECONDS": {s}, '
            f'"TX_TIME_DAYS": {d}, "source": "handbook"}}\n'
        )
        lab = f'{{"tx_id": "{i}", ' + lab_tail[sc if f else 0]
        fb = f'{ids}"event_time": {et}, "reported_at": {et + FEEDBACK_DELAY_MS}}}\n' if f else None
        yield tx, lab, fb


def write(out_tx, out_labels, out_feedback=None, **kw):
    """Simulate (kw as for generate) and write JSON Lines files. Returns the number of records.

    The feedback file holds every fraud, reported 7 days after its event time; as the delay is
    constant and transactions are in event-time order, it is sorted by reported_at."""
    cols = simulate(**kw)
    n = 0
    fbs = []
    with (
        open(out_tx, "w", encoding="utf-8", newline="\n") as ftx,
        open(out_labels, "w", encoding="utf-8", newline="\n") as flab,
    ):
        buf_tx, buf_lab = [], []
        for tx, lab, fb in _fast_lines(cols):
            buf_tx.append(tx)
            buf_lab.append(lab)
            if fb is not None:
                fbs.append(fb)
            n += 1
            if len(buf_tx) >= 65536:
                ftx.write("".join(buf_tx))
                flab.write("".join(buf_lab))
                buf_tx.clear()
                buf_lab.clear()
        ftx.write("".join(buf_tx))
        flab.write("".join(buf_lab))
    if out_feedback is not None:
        with open(out_feedback, "w", encoding="utf-8", newline="\n") as ffb:
            ffb.write("".join(fbs))
    return n


# --------------------------------------------------------------------------------------------
# malformed input
# --------------------------------------------------------------------------------------------


def malformed_lines() -> list[str]:
    """Exactly 10 distinct lines, each breaking the SPEC transaction table in one way."""

    def rec(i, **over):
        r = {
            "tx_id": f"bad_{i}",
            "card_id": "customer_1",
            "merchant_id": "terminal_1",
            "amount": 12.5,
            "event_time": 1522584000000,
            "source": "handbook",
        }
        for k, v in over.items():
            if v is _DROP:
                r.pop(k)
            else:
                r[k] = v
        return json.dumps(r)

    return [
        "this is not JSON at all",  # not JSON
        '{"tx_id": "bad_1", "card_id": "customer_1", "merchant_id": "terminal_1", "amount": 12.5',  # truncated
        '["bad_2", "customer_1", "terminal_1", 12.5, 1522584000000]',  # array, not object
        rec(3, tx_id=_DROP),  # missing tx_id
        rec(4, card_id=_DROP),  # missing card_id
        rec(5, amount="12.50"),  # amount is a string
        rec(6, amount=-3.25),  # negative amount
        rec(7).replace('"amount": 12.5', '"amount": 1e999'),  # non-finite (inf)
        rec(8, event_time="not a time, 32nd of Smarch"),  # unparseable time
        rec(9, event_time=True),  # event_time is a bool
    ]


_DROP = object()


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.foreign_sim", description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="transactions JSON Lines file")
    p.add_argument("--labels", required=True, help="labels JSON Lines file")
    p.add_argument("--feedback", default=None, help="confirmed-fraud feedback JSON Lines file")
    p.add_argument("--customers", type=int, default=5000)
    p.add_argument("--terminals", type=int, default=10000)
    p.add_argument("--days", type=int, default=183)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", default="2018-04-01")
    a = p.parse_args(argv)
    try:
        n = write(
            a.out,
            a.labels,
            a.feedback,
            n_customers=a.customers,
            n_terminals=a.terminals,
            days=a.days,
            seed=a.seed,
            start=a.start,
        )
    except (OSError, ValueError) as e:
        print(f"foreign_sim: {e}", file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        print(f"foreign_sim: wrote {n} transactions to {a.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
