"""How long a sentiment model's training texts were (`long_text_pieces`), recorded for reading long texts.

`train sentiment` records the 99th percentile of its training texts' subword-piece counts (at most
what its window held), and the classifier reads a longer text sentence by sentence
(`sensorium.runtime.text_windows`). This writes
the record into a run trained before runs recorded it, from its own training split (read as its
config.json says, with its own tokenizer), or sets it to the count given:

    python -m sensorium.pipelines.sentiment.long_text --model RUN [--pieces N]
    sensorium export --model RUN --format tflite      # the exports carry the record
"""
from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
PERCENTILE = 99.0
MAX_PIECES = 1_000_000  # a record beyond this is not a length (texts are refused over 1,000,000 characters)


def typical_pieces(tokenizer: Any, texts: Sequence[str], max_length: int) -> int | None:
    """The 99th percentile of the texts' piece counts, rounded up, and at most what the model's window
    held in training (`max_length` - 1 after [BOS]: a model trained on longer texts saw only their
    starts); at least 1; None without texts."""
    if not texts:
        return None
    lengths = np.asarray([len(p) for p in tokenizer.encode_pieces(list(texts))], np.float64)
    return max(1, min(int(math.ceil(np.percentile(lengths, PERCENTILE))), max_length - 1))


def record_long_text(model: str | Path, *, pieces: int | None = None) -> int:
    """Write `long_text_pieces` into the sentiment run `model` (its model.keras, atomically): `pieces`,
    or `typical_pieces` of its training texts; returns the value written."""
    from sensorium.pipelines.common.artifacts import run_config
    from sensorium.pipelines.common.run_info import record_value
    from sensorium.pipelines.sentiment.config import SentimentConfig
    from sensorium.pipelines.sentiment.data import load_train_validation
    from sensorium.runtime.errors import DataError, ModelError, UsageError
    from sensorium.runtime.text_norm import normalization_of, with_normalization
    from sensorium.runtime.tokenizer import tokenizers_from

    if pieces is not None and not 1 <= pieces <= MAX_PIECES:
        raise UsageError(f"--pieces must be between 1 and {MAX_PIECES:,}, got {pieces}")

    def compute(info: dict[str, Any], artifact: Any) -> int:
        if info.get("input") == "text":
            raise ModelError(f"{model}: this model takes strings itself (a hub encoder); it reads every text whole")
        cfg = run_config(artifact, SentimentConfig)
        if cfg is None:
            raise ModelError(f"{model}: no config.json to find its training data; pass --pieces N")
        train_split, _ = load_train_validation(cfg.data, seed=cfg.seed)
        tokenizer = with_normalization(tokenizers_from(str(artifact.run.model_path), info=info).source,
                                       normalization_of(info, str(model)))
        value = typical_pieces(tokenizer, train_split.items.texts, int(info["max_length"]))
        if value is None:
            raise DataError(f"{model}: its training split has no texts")
        return value

    return int(record_value(model, "sentiment", "long_text_pieces", pieces, compute))


def main(argv: list[str] | None = None) -> int:
    from sensorium.pipelines.common.run_info import recorder_main, value_option

    options = value_option("--pieces", int, "the value to record (default: the 99th percentile of the run's "
                                            "training texts)")

    def record(args: argparse.Namespace) -> str:
        return f"{args.model}: long_text_pieces {record_long_text(args.model, pieces=args.pieces)}"

    return recorder_main(argv, module="sensorium.pipelines.sentiment.long_text", doc=__doc__, task="sentiment",
                         options=options, record=record)


if __name__ == "__main__":
    sys.exit(main())
