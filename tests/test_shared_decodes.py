"""A worker's two readers of the input topic decode each record once, and what waits is bounded."""

from fraud.core.records import BadRecord, decode
from fraud.runners.kafka.shared_decodes import SharedDecodes


def _rec(k: int) -> bytes:
    return b'{"tx_id":"t%d","card_id":"c%d","merchant_id":"m","amount":1.5,"event_time":%d}' % (k, k % 3, k)


def test_the_table_reuses_what_the_worker_decoded_and_the_other_way_round():
    s = SharedDecodes()
    s.assigned({0: 0})
    for off in range(5):  # the worker first (steady state)
        tx = s.for_worker(0, off, _rec(off))
        assert s.for_table(0, off, _rec(off)) is tx
    assert s.shared == 5
    for off in range(5, 10):  # the table reader fetched ahead of the worker
        tx = s.for_table(0, off, _rec(off))
        assert s.for_worker(0, off, _rec(off)) is tx
    assert s.shared == 10
    # the same transaction as decoding the record alone would give
    tx = s.for_worker(0, 11, _rec(11))
    want = decode(_rec(11))
    assert (tx.tx_id, tx.card_id, tx.merchant_id, tx.amount, tx.ts) == (
        want.tx_id,
        want.card_id,
        want.merchant_id,
        want.amount,
        want.ts,
    )


def test_a_bad_record_is_shared_with_its_reason():
    s = SharedDecodes()
    s.assigned({0: 0})
    bad = s.for_worker(0, 0, b'{"tx_id": 1}')
    assert isinstance(bad, BadRecord) and s.for_table(0, 0, b'{"tx_id": 1}') is bad
    assert str(bad) == "tx_id must be a string, got int"


def test_read_before_the_assignment_keeps_only_the_partitions_and_offsets_the_worker_will_read():
    s = SharedDecodes()
    for p in range(3):  # the table's first read, before the worker joins the group
        for off in range(10):
            s.for_table(p, off, _rec(off))
    s.assigned({1: 4})  # the worker got partition 1, resuming at offset 4
    assert len(s._for_worker) == 6
    assert s.for_worker(1, 4, _rec(4)) is not None and s.shared == 1
    for off in range(5, 10):
        s.for_worker(1, off, _rec(off))
    assert s.shared == 6 and not s._for_worker
    s.for_table(2, 10, _rec(10))  # not the worker's partition: not kept for it
    assert not s._for_worker


def test_nothing_is_kept_for_a_reader_that_has_passed_the_offset_and_the_cap_holds():
    s = SharedDecodes(cap=3)
    s.assigned({0: 0})
    for off in range(10):
        s.for_table(0, off, _rec(off))
    assert len(s._for_worker) == 3  # at most the cap waits; the rest is decoded again
    for off in range(10):
        s.for_worker(0, off, _rec(off))
    assert s.shared == 3 and not s._for_worker
    assert not s._for_table  # the table had read those offsets already: nothing kept for it
    s.for_worker(0, 10, _rec(10))
    s.for_worker(0, 11, _rec(11))
    assert len(s._for_table) == 2
    s.assigned({})  # revoked: nothing more is kept for the worker
    s.for_table(0, 12, _rec(12))
    assert not s._for_worker
