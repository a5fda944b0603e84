"""Fixtures shared by the data set-up tests (`sensorium data ...`)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty SENSORIUM_CACHE for one test (a test module may define its own, wider-scoped one)."""
    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def cli_errors(capsys):
    """A function returning the `error:` lines a CLI wrote to stderr so far, after checking it wrote no
    traceback."""

    def read() -> list[str]:
        err = capsys.readouterr().err
        assert "Traceback" not in err
        return [line for line in err.splitlines() if line.startswith("error:")]

    return read
