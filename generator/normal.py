"""Legitimate card traffic, generated for the whole population at once with numpy.

Includes the legitimate behaviour that looks suspicious at first sight (trips to other
cities and countries, rare big-ticket purchases, night-time payments) so that detection has
to separate it from fraud rather than flag every deviation.
"""

from __future__ import annotations

import numpy as np

from . import catalog as C
from .columns import Tx
from .geo import haversine_km
from .population import World, pick

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


def _event_times(rng: np.random.Generator, world: World, card: np.ndarray, days: int) -> np.ndarray:
    """Event time per transaction: a day (weekends busier) and an hour in the card's waking hours."""
    cards = world.cards
    dow = (np.arange(days) + 3) % 7  # 2026-01-01 is a Thursday; only shapes the weekly rhythm
    pday = np.where(dow >= 4, 1.2, 1.0)
    day = rng.choice(days, size=len(card), p=pday / pday.sum())
    wake, sleep = cards.wake[card], cards.sleep[card]
    frac = rng.beta(1.7, 1.5, len(card))  # busier in the afternoon/evening than right after waking
    hour = wake + (sleep - wake) * frac
    night = rng.random(len(card)) < 0.03  # a few payments at any hour
    hour = np.where(night, rng.uniform(0, 24, len(card)), hour)
    t = (day * DAY_MS + hour * HOUR_MS).astype(np.int64)
    return np.mod(t, days * DAY_MS)  # late-night spill past the last day wraps to the first


def _amounts(
    rng: np.random.Generator, world: World, card: np.ndarray, merchant: np.ndarray, channel: np.ndarray
) -> np.ndarray:
    cards, m = world.cards, world.merchants
    logamt = cards.mu[card] + C.MCC_AMOUNT_OFFSET[m.mcc[merchant]] + cards.sigma[card] * rng.standard_normal(len(card))
    amount = np.exp(logamt)
    atm = channel == C.ATM
    amount[atm] = rng.choice(C.ATM_AMOUNTS, size=int(atm.sum()), p=C.ATM_AMOUNT_P)
    return amount


def legit_transactions(rng: np.random.Generator, world: World, days: int) -> tuple[Tx, np.ndarray]:
    """All legitimate transactions sorted by (card, event time), and a per-tx 'travelling' flag."""
    cards, m = world.cards, world.merchants
    n_cards = len(cards)
    counts = rng.poisson(cards.rate * days)
    card = np.repeat(np.arange(n_cards, dtype=np.int64), counts)
    n = len(card)
    t = _event_times(rng, world, card, days)

    u = rng.random(n)
    channel = np.where(
        u < cards.p_atm[card], C.ATM, np.where(u < cards.p_atm[card] + cards.p_ecom[card], C.ECOM, C.POS)
    )
    channel = channel.astype(np.int8)
    home = cards.home[card]
    regular = rng.random(n) < 0.8
    merchant = np.where(
        regular,
        pick(rng, cards.reg_phys, cards.reg_phys_n, card, skew=1.6),
        pick(rng, m.city_phys, m.city_phys_n, home),
    )
    ecom = channel == C.ECOM
    on_reg = pick(rng, cards.reg_online, cards.reg_online_n, card, skew=1.4)
    on_any = m.online_all[rng.integers(0, len(m.online_all), n)]
    merchant = np.where(ecom, np.where(rng.random(n) < 0.75, on_reg, on_any), merchant)
    merchant = np.where(channel == C.ATM, pick(rng, cards.reg_atm, cards.reg_atm_n, card), merchant)

    # rare legitimate big-ticket purchases (a TV, a flight, a ring)
    big = (rng.random(n) < 0.003) & (channel != C.ATM)
    big_pos = big & (channel == C.POS) & (m.city_big_n[home] > 0)
    merchant[big_pos] = pick(rng, m.city_big, m.city_big_n, home[big_pos])
    big_on = big & ecom
    merchant[big_on] = m.online_big[rng.integers(0, len(m.online_big), int(big_on.sum()))]

    amount = _amounts(rng, world, card, merchant, channel)
    amount[big] *= rng.uniform(4.0, 20.0, int(big.sum()))

    order = np.lexsort((t, card))
    tx = Tx(
        card=card[order],
        merchant=merchant[order],
        t_ms=t[order],
        amount=amount[order],
        channel=channel[order],
        scenario=np.zeros(n, np.int8),
        incident=np.full(n, -1, np.int64),
    )
    travelling = _apply_trips(rng, world, tx, days)
    # the big-ticket / trip merchant changes do not alter the amount model enough to redo it
    return tx, travelling


def travel_hours(km: np.ndarray | float) -> np.ndarray:
    """Door-to-door time of a plausible journey: drive short hops, fly long ones."""
    km = np.asarray(km, float)
    return np.where(km < 400, km / 80.0 + 0.5, km / 750.0 + 2.5)


def _apply_trips(rng: np.random.Generator, world: World, tx: Tx, days: int) -> np.ndarray:
    """Move card-present payments of travelling cardholders to their destination city.

    While in transit card-present payments become online ones, so that consecutive card-present
    payments are always reachable at a plausible speed (legit travel != impossible travel).
    """
    cards, m, cities = world.cards, world.merchants, world.cities
    n_cards = len(cards)
    travelling = np.zeros(len(tx), bool)
    n_trips = rng.poisson(cards.travel * days / 30.0)
    bounds = np.searchsorted(tx.card, np.arange(n_cards + 1))
    period = days * DAY_MS
    trip_cards = np.repeat(np.arange(n_cards), n_trips)
    k = len(trip_cards)
    if k == 0:
        return travelling
    abroad = rng.random(k) < 0.3
    dest = np.where(abroad, rng.choice(world.travel_cities, size=k), rng.choice(world.home_cities, size=k))
    home = cards.home[trip_cards]
    dest = np.where(dest == home, world.travel_cities[rng.integers(0, len(world.travel_cities), k)], dest)
    km = haversine_km(cities.lat[home], cities.lon[home], cities.lat[dest], cities.lon[dest])
    transit = (travel_hours(km) * HOUR_MS).astype(np.int64)
    depart = rng.integers(0, max(1, period - DAY_MS), k)
    stay = (rng.uniform(1.5, 8.0, k) * DAY_MS).astype(np.int64)
    last_end = -1
    last_card = -1
    for i in range(k):
        c = int(trip_cards[i])
        if c != last_card:
            last_card, last_end = c, -1
        d0 = int(depart[i])
        if d0 <= last_end:  # overlapping trips of one card: skip the later one
            continue
        a, l0 = d0 + int(transit[i]), d0 + int(transit[i]) + int(stay[i])
        r = l0 + int(transit[i])
        last_end = r
        s, e = bounds[c], bounds[c + 1]
        tt = tx.t_ms[s:e]
        i0, i1, i2, i3 = (s + np.searchsorted(tt, x) for x in (d0, a, l0, r))
        seg = np.arange(i0, i3)
        present = tx.channel[seg] != C.ECOM
        away = (seg >= i1) & (seg < i2)
        # in transit: only online payments
        moving = seg[present & ~away]
        tx.channel[moving] = C.ECOM
        tx.merchant[moving] = m.online_all[rng.integers(0, len(m.online_all), len(moving))]
        # at the destination: local shops and ATMs
        dst = int(dest[i])
        shops = seg[present & away & (tx.channel[seg] == C.POS)]
        tx.merchant[shops] = m.city_phys[dst, rng.integers(0, m.city_phys_n[dst], len(shops))]
        atms = seg[present & away & (tx.channel[seg] == C.ATM)]
        tx.merchant[atms] = m.city_atm[dst, rng.integers(0, m.city_atm_n[dst], len(atms))]
        travelling[seg] = True
    return travelling
