"""Record how a trained speech run's training clips end (`tail_silence`), weights unchanged.

`train speech` records the median trailing quiet of a run's training clips, and recognition tops
shorter endings up to it (`sensorium.runtime.speech`, tail_silence "model"). This writes the record
into a run trained before runs recorded it, from its own training split (read as its config.json
says, leading quiet cut as in training), or sets it to the seconds given:

    python -m sensorium.pipelines.speech.tail_silence --model RUN [--seconds S]
    sensorium export --model RUN --format tflite      # the exports carry the record
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def record_tail_silence(model: str | Path, *, seconds: float | None = None) -> float:
    """Write `tail_silence` into the speech run `model` (its model.keras, atomically): `seconds`, or the
    median trailing quiet of its training clips (`data.typical_tail`); returns the value written."""
    from sensorium.pipelines.common.run_info import record_value
    from sensorium.pipelines.speech.data import typical_tail
    from sensorium.pipelines.speech.rewrite import training_split
    from sensorium.runtime.errors import DataError, UsageError

    if seconds is not None and not 0.0 <= seconds <= 10.0:
        raise UsageError(f"--seconds must be between 0 and 10, got {seconds:g}")

    def compute(info: dict[str, Any], artifact: Any) -> float:
        train_split, _ = training_split(artifact, model, "pass --seconds S")
        value = typical_tail(train_split.waves)
        if value is None:
            raise DataError(f"{model}: no training clip has speech loud enough to find its end")
        return float(value)

    return float(record_value(model, "speech", "tail_silence", None if seconds is None else float(seconds), compute))


def main(argv: list[str] | None = None) -> int:
    from sensorium.pipelines.common.run_info import recorder_main, value_option

    options = value_option("--seconds", float, "the value to record (default: the median ending of the run's "
                                               "training clips)")

    def record(args: argparse.Namespace) -> str:
        return f"{args.model}: tail_silence {record_tail_silence(args.model, seconds=args.seconds):.2f} s"

    return recorder_main(argv, module="sensorium.pipelines.speech.tail_silence", doc=__doc__, task="speech",
                         options=options, record=record)


if __name__ == "__main__":
    sys.exit(main())
