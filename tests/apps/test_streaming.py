"""`tail -f log | sentiment --file -`: each line is answered soon after it arrives, while the pipe stays
open, and the process reads its input line by line (bounded memory however long the stream)."""
from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _read_line(proc: subprocess.Popen, timeout: float) -> tuple[str, float]:
    """The next stdout line and how long it took, or ("", timeout) when none came."""
    started = time.monotonic()
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    while time.monotonic() - started < timeout:
        if selector.select(timeout=0.05):
            chunk = os.read(proc.stdout.fileno(), 1)
            if not chunk:
                break
            buffer += chunk
            if chunk == b"\n":
                return buffer.decode(), time.monotonic() - started
    return buffer.decode(), timeout


def test_each_line_of_an_idle_pipe_is_answered_within_a_second():
    proc = subprocess.Popen([sys.executable, "-m", "sensorium", "sentiment", "--file", "-", "--json"], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        proc.stdin.write(b"I love this airline, the crew was great\n")
        proc.stdin.flush()
        first, _ = _read_line(proc, 60)  # includes loading the model
        assert json.loads(first)["label"] == "positive"
        delays = []
        for text, label in (("Delayed three hours and nobody told us anything", "negative"),
                            ("What a wonderful, friendly crew", "positive")):
            time.sleep(0.5)  # the pipe is idle, still open
            proc.stdin.write(text.encode() + b"\n")
            proc.stdin.flush()
            line, delay = _read_line(proc, 5)
            assert json.loads(line)["label"] == label
            delays.append(delay)
        assert max(delays) < 1.0, delays
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
