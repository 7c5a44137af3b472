"""The `late` flag and the watermark (SPEC 3)."""

from fraud.core.detector import Detector, DetectorSettings
from fraud.core.records import validate
from fraud.state.store import StateStore

T0 = 1_767_225_600_000


def _tx(n: int, t: int, card: str = "c") -> object:
    return validate({"tx_id": str(n), "card_id": card, "merchant_id": "m", "amount": 10.0, "event_time": t})


def test_late_flag_follows_the_watermark():
    store = StateStore(None)
    det = Detector(store, settings=DetectorSettings(watermark_bound_ms=5_000))
    flags = [
        det.update(_tx(n, t, card))
        for n, (t, card) in enumerate(
            [
                (T0, "a"),  # first event: never late
                (T0 + 60_000, "b"),  # watermark -> T0 + 55 s
                (T0 + 56_000, "a"),  # behind max but ahead of the watermark: on time
                (T0 + 54_999, "c"),  # behind the watermark: late (another card: the watermark is global)
                (T0 + 55_000, "a"),  # exactly at the watermark: not late
                (T0 - 3_600_000, "a"),  # an hour behind: late
            ]
        )
    ]
    assert flags == [False, False, False, True, False, True]
    assert det.watermark == T0 + 55_000
    store.close()


def test_late_events_still_join_the_history_and_get_decided():
    store = StateStore(None)
    det = Detector(store, settings=DetectorSettings(watermark_bound_ms=1_000), extra_features=["count_1h"])
    det.update(_tx(0, T0 + 600_000))
    assert det.update(_tx(1, T0))  # late
    assert det.vector[det.plan.index["count_1h"]] == 1  # the later event is not in its past
    det.update(_tx(2, T0 + 700_000))
    assert det.vector[det.plan.index["count_1h"]] == 3  # but it is in the past of what follows
    decision = det.score()
    assert decision[0] in ("allow", "review", "block")
    store.close()


def test_watermark_survives_a_checkpoint(tmp_path):
    store = StateStore(tmp_path / "state")
    det = Detector(store, settings=DetectorSettings(watermark_bound_ms=5_000))
    det.update(_tx(0, T0 + 60_000))
    store.checkpoint(det.checkpoint_meta())
    store.close()
    store = StateStore(tmp_path / "state")
    det = Detector(store, settings=DetectorSettings(watermark_bound_ms=5_000))
    assert det.update(_tx(1, T0))  # still late after the restart
    store.close()
