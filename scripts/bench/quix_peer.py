"""The Quix Streams peer of `fraud bench --kafka`: per card, a sliding one-hour count and sum of
amounts over event time, exactly-once, one process; the same input topic as the detector.

Runs in the benchmark's own virtual environment (`.cache/bench/quix-venv`, made by the bench; Quix
Streams is never a dependency of fraudstream). Usage:
    quix_peer.py BOOTSTRAP GROUP INPUT_TOPIC OUTPUT_TOPIC STATE_DIR
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from quixstreams import Application
from quixstreams.dataframe.windows import Count, Sum

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def event_ms(value, headers, timestamp, timestamp_type) -> int:
    t = value.get("event_time")
    if isinstance(t, (int, float)):
        return int(t)
    dt = datetime.fromisoformat(str(t).replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def main(bootstrap: str, group: str, input_topic: str, output_topic: str, state_dir: str) -> None:
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=1.0,
        state_dir=state_dir,
    )
    source = app.topic(input_topic, value_deserializer="json", key_deserializer="str", timestamp_extractor=event_ms)
    sink = app.topic(output_topic, value_serializer="json", key_serializer="str")
    sdf = app.dataframe(source)
    # the detector allows a day of lateness: the peer's windows accept the same
    sdf = sdf.sliding_window(duration_ms=HOUR_MS, grace_ms=DAY_MS).agg(count=Count(), total=Sum("amount")).current()
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main(*sys.argv[1:6])
