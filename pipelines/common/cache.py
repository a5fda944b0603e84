"""Where Sensorium keeps fetched data: $SENSORIUM_CACHE, else $XDG_CACHE_HOME/sensorium, else ~/.cache."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    root = os.environ.get("SENSORIUM_CACHE")
    if root:
        base = Path(root)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sensorium"
    return base.joinpath(*parts)
