"""Cardholders and merchants: who pays, where, how much and how often.

Every behavioural parameter is drawn once per card / merchant here so that legitimate
traffic and fraud scenarios read one consistent profile (fraud must deviate from *it*).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import catalog as C
from .geo import Cities, build_cities


def _unique_tokens(rng: np.random.Generator, n: int, bits: int) -> np.ndarray:
    """n distinct random integers below 2**bits, in draw order (ids must never collide)."""
    out = np.empty(0, dtype=np.uint64)
    while len(out) < n:
        draw = rng.integers(0, 2**bits, size=(n - len(out)) * 2 + 8, dtype=np.uint64)
        allv = np.concatenate([out, draw])
        _, first = np.unique(allv, return_index=True)
        out = allv[np.sort(first)]
    return out[:n]


def _card_tokens(tokens: np.ndarray) -> list[str]:
    """`c_<16 hex digits>`. The detector refuses a card number as a token, so the rare token whose
    16 hex digits are all decimal and Luhn-valid (about 1 card in 20,000) gets an `f` as its first
    digit: deterministic, no random draw, so every other token is unchanged."""
    from fraud.core.redact import looks_like_pan

    ids = [f"c_{int(t):016x}" for t in tokens]
    ids = [f"c_f{t[3:]}" if looks_like_pan(t) else t for t in ids]
    assert len(set(ids)) == len(ids)  # 2**-64 odds of a clash with another token
    return ids


def _padded(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Ragged lists -> (2-D array padded with the row's first item, counts) for vectorised picks."""
    counts = np.array([len(g) for g in groups], dtype=np.int64)
    width = max(1, int(counts.max()) if len(counts) else 1)
    out = np.zeros((len(groups), width), dtype=np.int64)
    for i, g in enumerate(groups):
        if len(g):
            out[i, : len(g)] = g
            out[i, len(g) :] = g[0]
    return out, counts


def pick(
    rng: np.random.Generator, table: np.ndarray, counts: np.ndarray, rows: np.ndarray, skew: float = 1.0
) -> np.ndarray:
    """Pick one entry per row of a padded table; skew > 1 favours the first (most regular) items."""
    u = rng.random(len(rows))
    if skew != 1.0:
        u = u**skew
    col = np.minimum((u * counts[rows]).astype(np.int64), np.maximum(counts[rows] - 1, 0))
    return table[rows, col]


@dataclass
class Merchants:
    """Merchant / terminal table; record fields mcc, lat/lon, country come from here."""

    ids: list[str]
    mcc: np.ndarray  # index into catalog.MCCS
    city: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    country: list[str]
    online: np.ndarray  # online-only merchant (no card-present payments)
    channel: np.ndarray  # the channel every payment at this merchant/terminal has (pos, ecom or atm)
    # per-city padded lookups
    city_phys: np.ndarray
    city_phys_n: np.ndarray
    city_atm: np.ndarray
    city_atm_n: np.ndarray
    city_big: np.ndarray  # big-ticket physical merchants per city
    city_big_n: np.ndarray
    city_risky: np.ndarray  # physical merchants in fraud cash-out categories per city
    city_risky_n: np.ndarray
    online_all: np.ndarray
    online_big: np.ndarray
    online_risky: np.ndarray
    online_testing: np.ndarray


@dataclass
class Cards:
    """Cardholder profiles (arrays indexed by card number)."""

    ids: list[str]
    home: np.ndarray  # city id
    mu: np.ndarray  # lognormal location of the card's amounts (log dollars)
    sigma: np.ndarray
    rate: np.ndarray  # mean transactions per day
    p_ecom: np.ndarray
    p_atm: np.ndarray
    wake: np.ndarray  # hour the card's owner starts paying
    sleep: np.ndarray  # hour they stop (may exceed 24: past midnight)
    travel: np.ndarray  # expected trips per 30 days
    reg_phys: np.ndarray
    reg_phys_n: np.ndarray
    reg_online: np.ndarray
    reg_online_n: np.ndarray
    reg_atm: np.ndarray
    reg_atm_n: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    def usual_amount(self) -> np.ndarray:
        """Typical (median) amount of the card, the baseline fraud amounts are scaled from."""
        return np.exp(self.mu + 0.15)


@dataclass
class World:
    cities: Cities
    home_cities: np.ndarray
    travel_cities: np.ndarray
    merchants: Merchants
    cards: Cards


def _weighted_top_k(
    rng: np.random.Generator, cands: np.ndarray, pref: np.ndarray, mcc: np.ndarray, k: int, window: int = 256
) -> np.ndarray:
    """k distinct candidates per row, drawn without replacement with weights pref[row, mcc[cand]].

    Gumbel top-k keeps it vectorised; each row only looks at a random window of `window`
    candidates (a neighbourhood), so memory stays linear in the number of cards.
    """
    rows = pref.shape[0]
    nc = len(cands)
    w = min(window, nc)
    offset = rng.integers(0, nc, rows)
    local = (offset[:, None] + np.arange(w)) % nc
    cand = cands[local]
    keys = np.log(pref[np.arange(rows)[:, None], mcc[cand]]) + rng.gumbel(size=cand.shape)
    top = np.argsort(-keys, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(cand, top, axis=1)
    if out.shape[1] < k:  # fewer candidates than k: pad with the first (counts say how many are real)
        out = np.concatenate([out, np.repeat(out[:, :1], k - out.shape[1], axis=1)], axis=1)
    return out


def _city_groups(n_cities: int, city: np.ndarray, mask: np.ndarray) -> list[np.ndarray]:
    idx = np.flatnonzero(mask)
    order = np.argsort(city[idx], kind="stable")
    idx = idx[order]
    bounds = np.searchsorted(city[idx], np.arange(n_cities + 1))
    return [idx[bounds[c] : bounds[c + 1]] for c in range(n_cities)]


def _build_merchants(
    rng: np.random.Generator, n: int, cities: Cities, home: np.ndarray, home_w: np.ndarray, travel: np.ndarray
) -> Merchants:
    n_travel_phys = 4 * len(travel)
    n_online = max(20, int(0.15 * n))
    n_atm = len(home) + max(0, int(0.06 * n))
    n_home_phys = max(3 * len(home), n - n_online - n_atm - n_travel_phys - len(travel))
    phys_mccs = np.flatnonzero(C.MCC_PHYSICAL)
    online_mccs = np.flatnonzero(C.MCC_ONLINE)
    pw = C.MCC_WEIGHT[phys_mccs] / C.MCC_WEIGHT[phys_mccs].sum()
    ow = C.MCC_WEIGHT[online_mccs] / C.MCC_WEIGHT[online_mccs].sum()

    # home physical merchants: at least 3 per home city, the rest by city size
    hp_city = np.concatenate([np.tile(home, 3), rng.choice(home, size=n_home_phys - 3 * len(home), p=home_w)])
    hp_mcc = rng.choice(phys_mccs, size=len(hp_city), p=pw)
    # make sure every city has one big-ticket and one risky-category shop
    hp_mcc[: len(home)] = rng.choice(C.BIG_TICKET_MCCS[C.MCC_PHYSICAL[C.BIG_TICKET_MCCS]], size=len(home))
    hp_mcc[len(home) : 2 * len(home)] = rng.choice(C.RISKY_MCCS, size=len(home))
    tp_city = np.repeat(travel, 4)
    tp_mcc = rng.choice(phys_mccs, size=len(tp_city), p=pw)
    atm_city = np.concatenate([home, travel, rng.choice(home, size=n_atm - len(home), p=home_w)])
    on_mcc = rng.choice(online_mccs, size=n_online, p=ow)
    # online merchants are registered mostly in the US; their HQ city is irrelevant to records
    on_city = np.where(
        rng.random(n_online) < 0.8,
        rng.choice(home[: max(1, len(home) // 2)], size=n_online),
        rng.choice(travel, size=n_online),
    )

    city = np.concatenate([hp_city, tp_city, atm_city, on_city]).astype(np.int64)
    mcc = np.concatenate([hp_mcc, tp_mcc, np.full(len(atm_city), C.ATM_MCC), on_mcc]).astype(np.int64)
    online = np.concatenate([np.zeros(len(hp_city) + len(tp_city) + len(atm_city), bool), np.ones(n_online, bool)])
    m = len(city)
    # shops spread a few km around the city centre
    lat = np.round(cities.lat[city] + rng.normal(0, 0.03, m), 5)
    lon = np.round(cities.lon[city] + rng.normal(0, 0.04, m), 5)
    perm = rng.permutation(m)  # mix kinds so ids reveal nothing
    city, mcc, online, lat, lon = city[perm], mcc[perm], online[perm], lat[perm], lon[perm]
    tokens = _unique_tokens(rng, m, 32)
    ids = [f"m_{int(t):08x}" for t in tokens]
    country = [cities.country[c] for c in city.tolist()]

    nc = len(cities)
    is_atm = mcc == C.ATM_MCC
    phys = ~online & ~is_atm
    big = np.isin(mcc, C.BIG_TICKET_MCCS)
    risky = np.isin(mcc, C.RISKY_MCCS)
    cp, cpn = _padded(_city_groups(nc, city, phys))
    ca, can = _padded(_city_groups(nc, city, is_atm))
    cb, cbn = _padded(_city_groups(nc, city, phys & big))
    cr, crn = _padded(_city_groups(nc, city, phys & risky))
    on_idx = np.flatnonzero(online)

    def _online_subset(codes: np.ndarray) -> np.ndarray:
        sub = on_idx[np.isin(mcc[on_idx], codes)]
        return sub if len(sub) else on_idx

    channel = np.where(online, C.ECOM, np.where(is_atm, C.ATM, C.POS)).astype(np.int8)
    return Merchants(
        ids=ids,
        mcc=mcc,
        city=city,
        lat=lat,
        lon=lon,
        country=country,
        online=online,
        channel=channel,
        city_phys=cp,
        city_phys_n=cpn,
        city_atm=ca,
        city_atm_n=can,
        city_big=cb,
        city_big_n=cbn,
        city_risky=cr,
        city_risky_n=crn,
        online_all=on_idx,
        online_big=_online_subset(C.BIG_TICKET_MCCS),
        online_risky=_online_subset(C.RISKY_MCCS),
        online_testing=_online_subset(C.TESTING_MCCS),
    )


def _build_cards(rng: np.random.Generator, n: int, merchants: Merchants, home: np.ndarray, home_w: np.ndarray) -> Cards:
    tokens = _unique_tokens(rng, n, 64)
    ids = _card_tokens(tokens)
    home_city = rng.choice(home, size=n, p=home_w)
    mu = rng.normal(3.2, 0.45, n)  # median ~ $25, from ~$10 to ~$60
    sigma = rng.uniform(0.55, 1.05, n)
    rate = np.clip(rng.lognormal(np.log(1.7), 0.6, n), 0.5, 6.0)  # heavy-tailed tx/day
    p_ecom = rng.beta(2.0, 6.0, n)  # mean 0.25
    p_atm = rng.beta(1.0, 19.0, n)  # mean 0.05
    wake = rng.normal(7.5, 1.2, n)
    sleep = wake + rng.normal(15.0, 1.3, n)
    travel = rng.exponential(0.35, n)
    pref = rng.dirichlet(np.ones(len(C.MCCS)), size=n) * 0.5 + C.MCC_WEIGHT * 0.5 + 1e-6

    m = merchants
    k_phys = rng.integers(5, 13, n)
    k_online = rng.integers(2, 6, n)
    rp = np.zeros((n, 12), np.int64)
    ro = np.zeros((n, 5), np.int64)
    for c in np.unique(home_city).tolist():  # vectorised per home city
        rows = np.flatnonzero(home_city == c)
        rp[rows] = _weighted_top_k(rng, m.city_phys[c, : m.city_phys_n[c]], pref[rows], m.mcc, 12)
    ro[:] = _weighted_top_k(rng, m.online_all, pref, m.mcc, 5)
    rpn = np.minimum(k_phys, m.city_phys_n[home_city])
    ron = np.minimum(k_online, len(m.online_all))
    # one or two ATMs near home (the second is the next one in the city's list)
    an = m.city_atm_n[home_city]
    first = rng.integers(0, np.maximum(an, 1))
    ra = np.stack([m.city_atm[home_city, first], m.city_atm[home_city, (first + 1) % np.maximum(an, 1)]], axis=1)
    ran = np.minimum(an, 2)
    return Cards(
        ids=ids,
        home=home_city.astype(np.int64),
        mu=mu,
        sigma=sigma,
        rate=rate,
        p_ecom=p_ecom,
        p_atm=p_atm,
        wake=wake,
        sleep=sleep,
        travel=travel,
        reg_phys=rp,
        reg_phys_n=rpn,
        reg_online=ro,
        reg_online_n=ron,
        reg_atm=ra,
        reg_atm_n=ran,
    )


def build_world(rng: np.random.Generator, seed: int, n_cards: int, n_merchants: int | None) -> World:
    """Cities, merchants and cards for one simulation run."""
    n_home = int(np.clip(n_cards // 40, 8, 60))
    cities, home, home_w, travel = build_cities(seed, C.HOME_COUNTRIES, n_home, C.TRAVEL_COUNTRIES)
    n_m = n_merchants if n_merchants is not None else max(200, n_cards // 4)
    merchants = _build_merchants(rng, n_m, cities, home, home_w, travel)
    cards = _build_cards(rng, n_cards, merchants, home, home_w)
    return World(cities=cities, home_cities=home, travel_cities=travel, merchants=merchants, cards=cards)
