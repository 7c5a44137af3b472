"""Fraud scenarios injected on top of legitimate traffic, each labelled with its name.

Each scenario is an *incident* generator (one victim card, or one breached merchant and its
victims); incidents are added until the scenario's share of the fraud budget is reached, so
the overall fraud rate follows the configuration whatever the population size.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from . import catalog as C
from .columns import Tx
from .geo import haversine_km
from .normal import DAY_MS, HOUR_MS
from .population import World

MIN_MS = 60_000

# share of fraudulent transactions per scenario (renormalised over the enabled ones)
SHARES: dict[str, float] = {
    "card_testing": 0.30,
    "account_takeover": 0.25,
    "compromised_merchant": 0.20,
    "impossible_travel": 0.10,
    "high_amount": 0.15,
}


@dataclass
class Context:
    rng: np.random.Generator
    world: World
    legit: Tx  # sorted by (card, time)
    travelling: np.ndarray
    bounds: np.ndarray  # legit rows of card c: bounds[c]:bounds[c+1]
    period_ms: int
    usual: np.ndarray  # per-card typical amount
    victims: Iterator[int]
    next_incident: int = 0

    def incident(self) -> int:
        self.next_incident += 1
        return self.next_incident - 1

    def random_time(self, margin_ms: int) -> int:
        """A time leaving `margin_ms` before the end (fraud needs room to unfold)."""
        lo = min(DAY_MS, self.period_ms // 4)
        hi = max(lo + 1, self.period_ms - margin_ms)
        return int(self.rng.integers(lo, hi))


def _victims(rng: np.random.Generator, n_cards: int) -> Iterator[int]:
    """Distinct victim cards first, reusing cards only when the population is exhausted."""
    while True:
        yield from rng.permutation(n_cards).tolist()


def _pick(rng: np.random.Generator, pool: np.ndarray, k: int = 1) -> np.ndarray:
    return pool[rng.integers(0, len(pool), k)]


def _city_pick(
    rng: np.random.Generator, table: np.ndarray, counts: np.ndarray, city: int, fallback: np.ndarray, k: int
) -> np.ndarray:
    if counts[city] > 0:
        return table[city, rng.integers(0, counts[city], k)]
    return _pick(rng, fallback, k)


def card_testing(ctx: Context) -> list[Tx]:
    """Burst of tiny authorisations (often 0.00 / 1.00) within minutes, maybe then a cash-out."""
    rng, m = ctx.rng, ctx.world.merchants
    card, inc = next(ctx.victims), ctx.incident()
    n = int(rng.integers(3, 16))
    t0 = ctx.random_time(3 * HOUR_MS)
    t = t0 + np.cumsum((rng.exponential(25.0, n) + 2.0) * 1000).astype(np.int64) - 2000
    amount = np.round(rng.uniform(0.0, 2.0, n), 2)
    exact = rng.random(n) < 0.25
    amount[exact] = rng.choice([0.0, 1.0], size=int(exact.sum()))
    if rng.random() < 0.85:  # online testing at one to three merchants
        shops = _pick(rng, m.online_testing, int(rng.choice([1, 2, 3], p=[0.5, 0.3, 0.2])))
        merchant = shops[rng.integers(0, len(shops), n)]
        channel = np.full(n, C.ECOM)
    else:  # cloned card tried at a local terminal
        home = int(ctx.world.cards.home[card])
        merchant = _city_pick(rng, m.city_phys, m.city_phys_n, home, m.online_all, 1).repeat(n)
        channel = np.full(n, C.POS)
    parts = [Tx.build(card, merchant, t, amount, channel, C.SCENARIO_CODE["card_testing"], inc)]
    if rng.random() < 0.5:  # the card works: cash out on resellable goods
        k = int(rng.integers(1, 3))
        tc = int(t[-1]) + np.sort(rng.integers(5 * MIN_MS, 60 * MIN_MS, k))
        amt = ctx.usual[card] * rng.uniform(4.0, 12.0, k) + rng.uniform(40.0, 300.0, k)
        parts.append(
            Tx.build(
                card, _pick(rng, m.online_risky, k), tc, amt, np.full(k, C.ECOM), C.SCENARIO_CODE["card_testing"], inc
            )
        )
    return parts


def account_takeover(ctx: Context) -> list[Tx]:
    """From a takeover moment on: several purchases far above the card's usual, at new merchants."""
    rng, m = ctx.rng, ctx.world.merchants
    card, inc = next(ctx.victims), ctx.incident()
    n = int(rng.integers(3, 9))
    t0 = ctx.random_time(2 * DAY_MS)
    span = rng.uniform(1.0, 2.0) * DAY_MS
    t = t0 + np.concatenate([[0], np.sort(rng.integers(0, int(span), n - 1))])
    online = rng.random(n) < 0.75
    home = int(ctx.world.cards.home[card])
    merchant = np.where(
        online, _pick(rng, m.online_risky, n), _city_pick(rng, m.city_risky, m.city_risky_n, home, m.online_risky, n)
    )
    channel = np.where(online, C.ECOM, C.POS)
    amount = ctx.usual[card] * rng.lognormal(np.log(6.0), 0.45, n)
    return [Tx.build(card, merchant, t, amount, channel, C.SCENARIO_CODE["account_takeover"], inc)]


def compromised_merchant(ctx: Context) -> list[Tx]:
    """A breached shop: some cards that paid there during the breach are abused in the next days."""
    rng, m, lg = ctx.rng, ctx.world.merchants, ctx.legit
    pos_rows = np.flatnonzero((lg.channel == C.POS) & ~ctx.travelling)
    if len(pos_rows) == 0:
        return []
    for _ in range(20):
        shop = int(lg.merchant[pos_rows[rng.integers(0, len(pos_rows))]])  # busy shops are likelier
        w0 = ctx.random_time(min(10 * DAY_MS, ctx.period_ms // 2))
        w1 = w0 + int(rng.uniform(2.0, 6.0) * DAY_MS)
        hit = np.flatnonzero((lg.merchant == shop) & (lg.t_ms >= w0) & (lg.t_ms < w1) & (lg.channel == C.POS))
        if len(hit) >= 2:
            break
    else:
        return []
    cards, first = np.unique(lg.card[hit], return_index=True)
    visit = lg.t_ms[hit][first]
    chosen = rng.random(len(cards)) < 0.45
    if not chosen.any():
        chosen[rng.integers(0, len(cards))] = True
    parts = []
    for card, tv in zip(cards[chosen].tolist(), visit[chosen].tolist()):
        inc = ctx.incident()
        k = int(rng.integers(1, 5))
        t = tv + np.sort(rng.integers(DAY_MS, 10 * DAY_MS, k))
        t = t[t < ctx.period_ms]
        k = len(t)
        if k == 0:
            continue
        online = rng.random(k) < 0.8
        home = int(ctx.world.cards.home[card])
        merchant = np.where(
            online, _pick(rng, m.online_big, k), _city_pick(rng, m.city_risky, m.city_risky_n, home, m.online_big, k)
        )
        amount = np.maximum(ctx.usual[card] * rng.uniform(2.0, 6.0, k), rng.uniform(60.0, 400.0, k))
        parts.append(
            Tx.build(
                card, merchant, t, amount, np.where(online, C.ECOM, C.POS), C.SCENARIO_CODE["compromised_merchant"], inc
            )
        )
    return parts


def impossible_travel(ctx: Context) -> list[Tx]:
    """A card-present payment on another continent within minutes of one at home."""
    rng, w, lg = ctx.rng, ctx.world, ctx.legit
    m, cities = w.merchants, w.cities
    for _ in range(50):
        card = next(ctx.victims)
        s, e = ctx.bounds[card], ctx.bounds[card + 1]
        rows = s + np.flatnonzero((lg.channel[s:e] != C.ECOM) & ~ctx.travelling[s:e])
        if len(rows):
            break
    else:
        return []
    anchor = int(rows[rng.integers(0, len(rows))])
    home = int(w.cards.home[card])
    km = haversine_km(cities.lat[home], cities.lon[home], cities.lat[w.travel_cities], cities.lon[w.travel_cities])
    far = w.travel_cities[km > 3000] if (km > 3000).any() else w.travel_cities[[int(np.argmax(km))]]
    city = int(far[rng.integers(0, len(far))])
    gap = int(rng.integers(30 * MIN_MS, 90 * MIN_MS))
    t1 = int(lg.t_ms[anchor]) + (gap if rng.random() < 0.75 else -gap)
    k = int(rng.integers(1, 4))
    t = t1 + np.concatenate([[0], np.sort(rng.integers(10 * MIN_MS, 180 * MIN_MS, k - 1))]).astype(np.int64)
    t = t[(t >= 0) & (t < ctx.period_ms)]
    k = len(t)
    if k == 0:
        return []
    atm = rng.random(k) < 0.25
    merchant = np.where(
        atm,
        m.city_atm[city, rng.integers(0, max(1, m.city_atm_n[city]), k)],
        m.city_phys[city, rng.integers(0, m.city_phys_n[city], k)],
    )
    amount = np.where(atm, rng.choice(C.ATM_AMOUNTS[4:], size=k), ctx.usual[card] * rng.uniform(1.5, 6.0, k))
    return [
        Tx.build(
            card, merchant, t, amount, np.where(atm, C.ATM, C.POS), C.SCENARIO_CODE["impossible_travel"], ctx.incident()
        )
    ]


def high_amount(ctx: Context) -> list[Tx]:
    """One purchase 10-50x the card's typical amount, at a store or online."""
    rng, m = ctx.rng, ctx.world.merchants
    card = next(ctx.victims)
    home = int(ctx.world.cards.home[card])
    t = ctx.random_time(HOUR_MS)
    if rng.random() < 0.5 and m.city_big_n[home] > 0:
        merchant, channel = int(m.city_big[home, rng.integers(0, m.city_big_n[home])]), C.POS
    else:
        merchant, channel = int(_pick(rng, m.online_big)[0]), C.ECOM
    amount = ctx.usual[card] * rng.uniform(10.0, 50.0)
    return [Tx.build(card, [merchant], [t], [amount], [channel], C.SCENARIO_CODE["high_amount"], ctx.incident())]


GENERATORS: dict[str, Callable[[Context], list[Tx]]] = {
    "card_testing": card_testing,
    "account_takeover": account_takeover,
    "compromised_merchant": compromised_merchant,
    "impossible_travel": impossible_travel,
    "high_amount": high_amount,
}


def inject_fraud(
    rng: np.random.Generator,
    world: World,
    legit: Tx,
    travelling: np.ndarray,
    days: int,
    fraud_rate: float,
    scenarios: tuple[str, ...],
) -> Tx:
    """Fraud transactions for all enabled scenarios, about fraud_rate of the final stream."""
    unknown = [s for s in scenarios if s not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown fraud scenario(s): {', '.join(unknown)}; known: {', '.join(C.SCENARIOS)}")
    enabled = [s for s in C.SCENARIOS if s in scenarios]  # catalogue order: independent of the tuple order
    if not enabled or fraud_rate <= 0 or len(legit) == 0:
        return Tx.empty()
    total = fraud_rate * len(legit) / (1.0 - fraud_rate)
    norm = sum(SHARES[s] for s in enabled)
    n_cards = len(world.cards)
    ctx = Context(
        rng=rng,
        world=world,
        legit=legit,
        travelling=travelling,
        bounds=np.searchsorted(legit.card, np.arange(n_cards + 1)),
        period_ms=days * DAY_MS,
        usual=world.cards.usual_amount(),
        victims=_victims(rng, n_cards),
    )
    parts: list[Tx] = []
    for name in enabled:
        budget = max(1, int(round(total * SHARES[name] / norm)))
        made = 0
        for _ in range(budget * 4 + 20):
            if made >= budget:
                break
            for part in GENERATORS[name](ctx):
                take = min(len(part), budget - made)
                if take > 0:  # keep the start of the incident: it is what the detector must catch
                    parts.append(part.take(np.argsort(part.t_ms, kind="stable")[:take]))
                    made += take
    fraud = Tx.concat(parts)
    fraud.amount = np.maximum(fraud.amount, 0.0)
    return fraud
