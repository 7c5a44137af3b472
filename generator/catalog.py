"""Static reference tables (MCCs, channels, scenarios) shared by every generator step.

Kept in one place so that integer codes used inside numpy arrays map to the same strings
everywhere (population, legit traffic, fraud, encoding).
"""

from __future__ import annotations

import numpy as np

CHANNELS: tuple[str, ...] = ("pos", "ecom", "atm")
POS, ECOM, ATM = 0, 1, 2

SCENARIOS: tuple[str, ...] = (
    "card_testing",
    "account_takeover",
    "compromised_merchant",
    "impossible_travel",
    "high_amount",
)
# scenario code 0 = legitimate; code i+1 = SCENARIOS[i]
SCENARIO_CODE: dict[str, int] = {name: i + 1 for i, name in enumerate(SCENARIOS)}

# (mcc, base popularity weight, log-amount offset vs the card's mu, physical?, online?)
_MCC_ROWS: tuple[tuple[str, float, float, bool, bool], ...] = (
    ("5411", 0.22, 0.35, True, True),  # grocery
    ("5812", 0.12, 0.15, True, True),  # restaurants (incl. delivery)
    ("5814", 0.14, -0.85, True, False),  # fast food
    ("5541", 0.09, 0.25, True, False),  # fuel
    ("5311", 0.06, 0.55, True, True),  # department stores
    ("5912", 0.06, -0.25, True, True),  # pharmacy
    ("5999", 0.07, 0.0, True, True),  # misc retail
    ("4121", 0.05, -0.2, False, True),  # taxi / rideshare (app)
    ("5815", 0.07, -1.3, False, True),  # digital goods
    ("4814", 0.03, 0.6, False, True),  # telecom
    ("5732", 0.03, 1.3, True, True),  # electronics
    ("5944", 0.01, 1.6, True, True),  # jewellery
    ("5947", 0.02, 0.2, True, True),  # gifts, cards, novelty
    ("4511", 0.01, 2.2, False, True),  # airlines
    ("7011", 0.02, 1.8, True, True),  # hotels
)
MCCS: tuple[str, ...] = tuple(r[0] for r in _MCC_ROWS) + ("6011",)
ATM_MCC = len(MCCS) - 1
MCC_WEIGHT = np.array([r[1] for r in _MCC_ROWS] + [0.0])
MCC_AMOUNT_OFFSET = np.array([r[2] for r in _MCC_ROWS] + [0.0])
MCC_PHYSICAL = np.array([r[3] for r in _MCC_ROWS] + [False])
MCC_ONLINE = np.array([r[4] for r in _MCC_ROWS] + [False])
MCC_INDEX = {m: i for i, m in enumerate(MCCS)}

# categories fraudsters cash out in (resellable goods, gift cards)
RISKY_MCCS = np.array([MCC_INDEX[m] for m in ("5732", "5944", "5947", "5999")])
# categories card testers probe with (cheap digital goods, misc)
TESTING_MCCS = np.array([MCC_INDEX[m] for m in ("5815", "5999", "5947")])
# categories of legitimate big-ticket purchases
BIG_TICKET_MCCS = np.array([MCC_INDEX[m] for m in ("5732", "5944", "5311", "4511", "7011")])

# country of the card's home and foreign destinations; amounts are always in the card's billing currency
CURRENCY = "USD"
HOME_COUNTRIES: tuple[tuple[str, float], ...] = (("US", 0.86), ("CA", 0.04), ("GB", 0.05), ("DE", 0.03), ("FR", 0.02))
TRAVEL_COUNTRIES: tuple[str, ...] = (
    "US",
    "CA",
    "MX",
    "GB",
    "FR",
    "DE",
    "IT",
    "ES",
    "NL",
    "JP",
    "BR",
    "AU",
    "TH",
    "IN",
    "TR",
    "NG",
    "RU",
    "CN",
    "AR",
    "PH",
)

ATM_AMOUNTS = np.array([20.0, 40.0, 60.0, 80.0, 100.0, 120.0, 200.0, 300.0, 400.0, 500.0])
ATM_AMOUNT_P = np.array([0.12, 0.16, 0.12, 0.08, 0.2, 0.06, 0.14, 0.06, 0.04, 0.02])
