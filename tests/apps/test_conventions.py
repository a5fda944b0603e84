"""What users expect of any CLI: --version, python -m, help with examples and for every flag,
whisper-style transcript files, and -q hiding progress bars."""
from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from sensorium.apps import classify, sentiment, transcribe, translate
from sensorium.apps import main as sensorium_app

ROOT = Path(__file__).resolve().parents[2]
WAVS = [ROOT / "assets" / "examples" / f"speech-{name}.wav" for name in ("four-two-seven", "turn-on-the-light")]


def test_version_agrees_everywhere(capsys):
    import sensorium

    assert sensorium.__version__ and sensorium.__version__[0].isdigit()
    for main in (sensorium_app.main, classify.main, transcribe.main, sentiment.main, translate.main):
        with pytest.raises(SystemExit) as stop:
            main(["--version"])
        assert stop.value.code == 0
        assert capsys.readouterr().out.split()[-1] == sensorium.__version__
    proc = subprocess.run([sys.executable, "-m", "sensorium", "--version"], capture_output=True, text=True, timeout=120,
                          cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.split() == ["sensorium", sensorium.__version__]


def _parsers(parser: argparse.ArgumentParser, prefix: str = "sensorium"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_every_option_has_help_and_commands_show_examples():
    parsers = dict(_parsers(sensorium_app.build_parser()))
    assert {"sensorium train image", "sensorium tune speech", "sensorium data", "sensorium translate"} <= set(parsers)
    missing = [f"{name} {action.option_strings or action.dest}" for name, parser in parsers.items()
               for action in parser._actions
               if not isinstance(action, argparse._SubParsersAction) and not action.help]
    assert not missing, missing
    for name in ("sensorium", "sensorium classify", "sensorium transcribe", "sensorium sentiment",
                 "sensorium translate", "sensorium data"):
        assert "examples:" in parsers[name].format_help(), name


def test_transcribe_formats_and_output_dir(tmp_path, capsys):
    assert transcribe.main([str(WAVS[0]), "--format", "srt"]) == 0
    assert capsys.readouterr().out == "1\n00:00:00,000 --> 00:00:01,275\nfour two seven\n\n"
    assert transcribe.main([str(WAVS[0]), "--format", "vtt"]) == 0
    assert capsys.readouterr().out.startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert transcribe.main([str(WAVS[0]), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["text"] == "four two seven"

    assert transcribe.main([*map(str, WAVS), "--format", "srt"]) == 2  # several subtitles need --output-dir
    assert "--output-dir" in capsys.readouterr().err
    out = tmp_path / "subs"
    assert transcribe.main([*map(str, WAVS), str(WAVS[0]), "--format", "vtt", "--output-dir", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    written = sorted(p.name for p in out.iterdir())
    assert written == ["speech-four-two-seven-2.vtt", "speech-four-two-seven.vtt", "speech-turn-on-the-light.vtt"]
    assert len(lines) == 3 and lines[1].endswith("speech-turn-on-the-light.vtt")
    assert "turn on the light" in (out / "speech-turn-on-the-light.vtt").read_text()
    assert transcribe.main([str(WAVS[1]), "--output-dir", str(out)]) == 0  # txt by default
    assert (out / "speech-turn-on-the-light.txt").read_text() == "turn on the light\n"


def test_quiet_hides_progress_bars(monkeypatch):
    from sensorium.apps.cli import setup_logging
    from sensorium.pipelines.common.progress import show_progress

    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    try:
        setup_logging(0)
        assert show_progress()
        setup_logging(-1)  # -q
        assert not show_progress()
    finally:
        setup_logging(0)
        logging.getLogger().setLevel(logging.WARNING)
