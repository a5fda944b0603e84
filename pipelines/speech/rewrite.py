"""What the speech modules that rewrite a trained run's records (`language_model`, `tail_silence`;
`sensorium.pipelines.common.run_info`) read from the run: its training split."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def training_split(artifact: Any, model: str | Path, hint: str) -> tuple[Any, Any]:
    """(the run's training split (`SpeechSplit`), read as its config.json says, and that config); a
    ModelError naming `hint` (what to pass instead) when the run has no config."""
    from sensorium.pipelines.common.artifacts import run_config
    from sensorium.pipelines.speech.config import SpeechConfig
    from sensorium.pipelines.speech.data import load_train_validation
    from sensorium.runtime.errors import ModelError

    cfg = run_config(artifact, SpeechConfig)
    if cfg is None:
        raise ModelError(f"{model}: no config.json to find its training data; {hint}")
    train_split, _ = load_train_validation(cfg.data, seed=cfg.seed, model_spec=cfg.model)
    return train_split, cfg
