"""Serialise columnar batches to JSON Lines bytes, vectorised.

Per-record Python work (even one f-string) costs about a microsecond per field on this
class of machine, which caps throughput well below 100k records/s. So lines are assembled
with numpy instead: fixed-width parts (tx id, ISO time) are rendered as ASCII digit
matrices, merchant/card parts come from per-entity byte tables, and variable-width parts
are joined with np.strings.add (which drops the NUL padding of 'S' arrays). All
interpolated tokens are generated ASCII (no quotes or backslashes), so no escaping is needed.
"""

from __future__ import annotations

import numpy as np

from . import catalog as C

AMOUNT_INT_DIGITS = 8  # up to 99,999,999.99: far above the simulator's authorisation cap


def _const(text: bytes, n: int) -> np.ndarray:
    return np.broadcast_to(np.frombuffer(text, np.uint8), (n, len(text)))


def _digits(v: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative ints as an (n, width) ASCII matrix."""
    pw = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((v[:, None] // pw) % 10 + 48).astype(np.uint8)


def _as_bytes(mat: np.ndarray) -> np.ndarray:
    """(n, w) uint8 matrix -> (n,) 'S{w}' array without copying twice."""
    mat = np.ascontiguousarray(mat)
    return mat.view(f"S{mat.shape[1]}").ravel()


def iso_matrix(epoch_ms: np.ndarray) -> np.ndarray:
    """Epoch ms -> (n, 24) ASCII matrix of 'YYYY-MM-DDTHH:MM:SS.mmmZ'."""
    ms = np.asarray(epoch_ms, np.int64)
    n = len(ms)
    day = (ms // 86_400_000).astype("datetime64[D]")
    month = day.astype("datetime64[M]")
    year = day.astype("datetime64[Y]").astype(np.int64) + 1970
    mon = month.astype(np.int64) % 12 + 1
    dom = (day - month.astype("datetime64[D]")).astype(np.int64) + 1
    rem = ms % 86_400_000
    parts = [
        _digits(year, 4),
        _const(b"-", n),
        _digits(mon, 2),
        _const(b"-", n),
        _digits(dom, 2),
        _const(b"T", n),
        _digits(rem // 3_600_000, 2),
        _const(b":", n),
        _digits(rem // 60_000 % 60, 2),
        _const(b":", n),
        _digits(rem // 1000 % 60, 2),
        _const(b".", n),
        _digits(rem % 1000, 3),
        _const(b"Z", n),
    ]
    return np.hstack(parts)


def iso_ms(epoch_ms: np.ndarray) -> list[str]:
    """Epoch ms -> ['2026-01-05T12:00:00.250Z', ...]."""
    if len(epoch_ms) == 0:
        return []
    return [b.decode() for b in _as_bytes(iso_matrix(epoch_ms)).tolist()]


def amount_text(amount: np.ndarray) -> np.ndarray:
    """Dollars -> 'S' array of '12.30'-style numbers (always two decimals), NUL padded."""
    cents = np.rint(np.asarray(amount, float) * 100).astype(np.int64)
    ip, frac = cents // 100, cents % 100
    if len(ip) and ip.max() >= 10**AMOUNT_INT_DIGITS:
        raise ValueError("amount too large to encode")
    nd = np.maximum(1, np.floor(np.log10(np.maximum(ip, 1))).astype(np.int64) + 1)
    nd = nd + (ip >= 10**nd)  # guard float log10 rounding at powers of ten
    w = AMOUNT_INT_DIGITS + 3
    j = np.arange(w)[None, :]
    ndc = nd[:, None]
    pw = 10 ** np.clip(ndc - 1 - j, 0, None)
    mat = np.where(j < ndc, (ip[:, None] // pw) % 10 + 48, 0)
    mat = np.where(j == ndc, ord("."), mat)
    mat = np.where(j == ndc + 1, frac[:, None] // 10 + 48, mat)
    mat = np.where(j == ndc + 2, frac[:, None] % 10 + 48, mat)
    return _as_bytes(mat.astype(np.uint8))


def table(strings: list[str]) -> np.ndarray:
    """Per-entity byte snippets, indexed by entity number."""
    return np.array([s.encode() for s in strings], dtype=bytes)


def merchant_tails(
    mcc: np.ndarray, channel: np.ndarray, lat: np.ndarray, lon: np.ndarray, country: list[str]
) -> np.ndarray:
    """The merchant-determined end of a transaction line; card-present ones carry coordinates."""
    out = []
    for mc, ch, la, lo, co in zip(mcc.tolist(), channel.tolist(), lat.tolist(), lon.tolist(), country):
        head = f',"currency":"{C.CURRENCY}","mcc":"{C.MCCS[mc]}","channel":"{C.CHANNELS[ch]}"'
        if ch == C.ECOM:
            out.append(f'{head},"country":"{co}"}}')
        else:
            out.append(f'{head},"lat":{la!r},"lon":{lo!r},"country":"{co}"}}')
    return table(out)


SCENARIO_TAIL = table(['0,"scenario":null}'] + [f'1,"scenario":"{s}"}}' for s in C.SCENARIOS])


def encode_chunk(
    seq: np.ndarray,
    card_tab: np.ndarray,
    card: np.ndarray,
    merch_tab: np.ndarray,
    tail_tab: np.ndarray,
    merchant: np.ndarray,
    epoch_ms: np.ndarray,
    amount: np.ndarray,
    scenario: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Transaction and label lines ('S' arrays, no newline) for one block of records.

    card_tab[c] = b'"card_id":"c_.."', merch_tab[m] = b',"merchant_id":"m_.."'.
    """
    n = len(seq)
    idd = _digits(seq, 9)
    id_part = _as_bytes(np.hstack([_const(b'{"tx_id":"t', n), idd, _const(b'",', n)]))
    time_part = _as_bytes(np.hstack([_const(b',"event_time":"', n), iso_matrix(epoch_ms), _const(b'","amount":', n)]))
    add = np.strings.add
    line = add(
        add(add(add(add(id_part, card_tab[card]), merch_tab[merchant]), time_part), amount_text(amount)),
        tail_tab[merchant],
    )
    label = add(
        _as_bytes(np.hstack([_const(b'{"tx_id":"t', n), idd, _const(b'","is_fraud":', n)])), SCENARIO_TAIL[scenario]
    )
    return line, label
