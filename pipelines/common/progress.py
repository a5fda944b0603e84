"""Progress bars on stderr for long work (training epochs, data building, batch jobs), shown only where
someone watches: on a terminal, and not under `-q` (the CLI's quiet mode sets the log level to WARNING)."""
from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import Any


def show_progress() -> bool:
    """True when progress bars should be drawn: stderr is a terminal and INFO messages are shown."""
    return sys.stderr.isatty() and logging.getLogger("sensorium").isEnabledFor(logging.INFO)


def progress(iterable: Iterable[Any] | None = None, *, enabled: bool = True, **tqdm_args: Any) -> Any:
    """A tqdm bar on stderr (disabled unless `show_progress()` and `enabled`)."""
    from tqdm import tqdm

    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, disable=not (enabled and show_progress()),
                **tqdm_args)
