"""The installed console scripts, as a user runs them (one subprocess each: TensorFlow start-up is slow)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def installed(name: str) -> str | None:
    """The console script of this interpreter's environment (its bin/), else the one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() else shutil.which(name)


def test_classify_command_with_bundled_models():
    exe = installed("classify")
    assert exe, "the `classify` console script is not installed (pip install -e .)"
    ex = ROOT / "assets/examples"
    examples = [ex / "cat.jpg", ex / "coffee.jpg", ex / "digit-7.png", ROOT / "nope.png"]
    proc = subprocess.run([exe, *map(str, examples), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the digit is under 32 px for the ImageNet model; one is missing
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r.get("label") for r in results] == ["Egyptian cat", "espresso", None, None]
    assert len(results[0]["top_k"]) == 5 and "tabby" in [t["label"] for t in results[0]["top_k"]]
    assert "28x28 px; this model needs at least 32 px" in results[2]["error"] and results[3]["ok"] is False
    assert proc.stderr == ""  # failures are JSON objects on stdout; no TensorFlow start-up noise
    proc = subprocess.run([exe, "--model", "digits", str(ex / "digit-7.png"), str(ex / "digit-2.png"), "--json"],
                          capture_output=True, text=True, timeout=300)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0 and [r["label"] for r in results] == ["7", "2"] and results[0]["score"] > 0.9


def test_sensorium_help_lists_commands_and_tasks():
    exe = installed("sensorium")
    assert exe, "the `sensorium` console script is not installed (pip install -e .)"
    proc = subprocess.run([exe, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and all(t in proc.stdout for t in ("image", "speech", "sentiment", "translation"))
    proc = subprocess.run([exe, "frobnicate"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_transcribe_command_with_bundled_model():
    exe = installed("transcribe")
    assert exe, "the `transcribe` console script is not installed (pip install -e .)"
    examples = [ROOT / "assets/examples/speech-four-two-seven.wav", ROOT / "nope.wav"]
    proc = subprocess.run([exe, *map(str, examples), "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # one input is missing
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r.get("text") for r in results] == ["four two seven", None] and results[1]["ok"] is False
    assert proc.stderr == ""  # no TensorFlow start-up noise


def test_sentiment_command_with_bundled_model():
    exe = installed("sentiment")
    assert exe, "the `sentiment` console script is not installed (pip install -e .)"
    texts = ["I love this airline, the crew was great", "Delayed three hours and nobody told us anything", ""]
    proc = subprocess.run([exe, *texts, "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr  # the empty text fails
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r.get("label") for r in results] == ["positive", "negative", None]
    assert results[2] == {"input": "", "ok": False, "error": "empty text"}
    assert proc.stderr == ""  # no TensorFlow start-up noise


def test_translate_command_with_bundled_model():
    exe = installed("translate")
    assert exe, "the `translate` console script is not installed (pip install -e .)"
    proc = subprocess.run([exe, "Delete %(name)s?", "<b>Save</b> {count} files", "--json"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["ok"] for r in results] == [True, True]
    assert "%(name)s" in results[0]["translation"] and "{count}" in results[1]["translation"]
    assert results[1]["translation"].count("<b>") == 1 and results[1]["translation"].count("</b>") == 1
    assert proc.stderr == ""
