"""A worker started while the broker is away waits for it (one line, backoff), and stops cleanly on
SIGTERM. No broker needed: nothing listens on the port used."""

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

FRAUD = str(Path(sys.executable).with_name("fraud"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # free now, and nothing listens on it


def test_unreachable_broker_waits_then_sigterm_exits_cleanly(tmp_path):
    err = tmp_path / "err.txt"
    with open(err, "wb") as f:
        proc = subprocess.Popen(
            [FRAUD, "detect", "--kafka", f"127.0.0.1:{_closed_port()}", "--state", str(tmp_path / "s")],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )
    try:
        deadline = time.monotonic() + 120
        while b"retrying with backoff" not in err.read_bytes():
            assert proc.poll() is None, err.read_text()
            assert time.monotonic() < deadline, "no waiting message"
            time.sleep(0.1)
        assert proc.poll() is None  # waiting, not failed
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = err.read_text().strip().splitlines()
    assert rc == 0, lines
    assert "Traceback" not in err.read_text()
    assert len([line for line in lines if "unreachable" in line]) == 1  # said once, not per retry
    assert lines[-1] == "fraud detect: stopped before Kafka answered; nothing was decided"
