"""Re-frame a trained image classifier: put `ContentFraming` in front of its network, weights unchanged.

A network trained on MNIST-style data (a digit scaled into a 20x20 box and centred by its centre of mass
in 28x28) sees other framings rarely: digits that fill the frame, small ones, off-centre ones. The
`ContentFraming` layer (models/blocks/image_preprocessing.py) re-frames every input that way inside the
model, so the trained network can be kept: this writes a new run directory whose model is the old one
with the layer inserted after preprocessing (every weight copied, checked by layer name and shape),
whose config.json records the framing (retraining from it trains with the layer in place), and which is
evaluated on the run's held-out split like a trained run.

    python -m sensorium.pipelines.image.framing --model RUN --out NEW_RUN [--fraction 0.7143]
        [--threshold 0.25] [--overwrite]
    sensorium evaluate --model NEW_RUN --data builtin:mnist-reframed@test

The bundled digits model was made this way from its MNIST-trained network (assets/models/mnist's card).
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MNIST_FRACTION = 20.0 / 28.0  # MNIST's digit box: 20 px of 28
DEFAULT_THRESHOLD = 0.25  # content: pixels brighter than this fraction of the image's brightest


def reframe_run(model: str | Path, out: str | Path, *, fraction: float = MNIST_FRACTION,
                threshold: float = DEFAULT_THRESHOLD, overwrite: bool = False) -> Path:
    """Write the run directory `out`: the image run `model` with ContentFraming inside its model."""
    from sensorium.pipelines.common.artifacts import inspect_artifact, load_keras, require_task, run_config
    from sensorium.pipelines.common.rundir import RunDir
    from sensorium.pipelines.image.config import ImageClassificationConfig
    from sensorium.runtime.errors import ModelError

    artifact = require_task(inspect_artifact(model), "image")
    if Path(out).expanduser().resolve() == artifact.path.resolve():
        raise ModelError(f"{out}: write the re-framed run to a new folder, not over the run it comes from")
    cfg = run_config(artifact, ImageClassificationConfig)
    if cfg is None:
        raise ModelError(f"{model}: re-framing needs a run directory (its config.json says how the model was built)")
    if cfg.model.backbone:
        raise ModelError(f"{model}: a pretrained-backbone model ({cfg.model.backbone}) sees photos, not "
                         "MNIST-style content on a dark ground; re-framing is for models trained from scratch")
    if cfg.model.framing:
        raise ModelError(f"{model}: its model already re-frames its input ({cfg.model.framing})")
    labels = artifact.labels or []
    source_model = load_keras(artifact.run.model_path)
    framed_cfg = replace(cfg, model=replace(cfg.model, framing={"fraction": round(float(fraction), 4),
                                                                "threshold": float(threshold)}))
    try:
        framed = _graft(source_model, framed_cfg, labels)
    except ValueError as exc:  # a bad fraction or threshold, or a network that does not match its config
        raise ModelError(f"{model}: {exc}") from None

    run = RunDir.create(out, "image", overwrite=overwrite)
    _write(run, artifact.run, framed_cfg, framed, labels)
    return run.path


def _graft(source: Any, cfg: Any, labels: list[str]) -> Any:
    """A model built from `cfg` (with framing) carrying every weight of `source`, matched by layer name."""
    from sensorium.models.image import build_image_classifier

    framed = build_image_classifier(cfg.model, num_classes=len(labels), labels=labels, name=source.name)
    names = {layer.name for layer in framed.layers}
    for layer in source.layers:
        if not layer.weights:
            continue
        if layer.name not in names:
            raise ValueError(f"its layer {layer.name!r} is not in a model built from its config.json")
        framed.get_layer(layer.name).set_weights(layer.get_weights())  # ValueError on a shape mismatch
    copied = sum(len(layer.weights) for layer in source.layers)
    log.info("copied %d weight tensors; inserted ContentFraming(%s)", copied, cfg.model.framing)
    return framed


def _write(run: Any, source: Any, cfg: Any, model: Any, labels: list[str]) -> None:
    from sensorium.pipelines.common.config import config_to_dict
    from sensorium.pipelines.common.rundir import read_history
    from sensorium.pipelines.common.training import finish_run
    from sensorium.pipelines.image.card import write_card
    from sensorium.pipelines.image.evaluate import evaluate
    from sensorium.runtime.atomic import atomic_path

    run.write_json("config.json", config_to_dict(cfg))
    run.write_labels(labels)
    for name in ("history.csv", "splits"):  # the network's training record stays true
        src = source.path / name
        if src.is_dir():
            shutil.copytree(src, run.path / name, dirs_exist_ok=True)
        elif src.is_file():
            shutil.copy2(src, run.path / name)
    with atomic_path(run.model_path) as tmp:
        model.save(tmp)
    summary = {**source.read_manifest().get("summary", {}), "reframed_from": str(source.path),
               "framing": dict(cfg.model.framing)}
    run.set_status("training", command=" ".join(["python -m sensorium.pipelines.image.framing", *sys.argv[1:]]))
    history = read_history(run.history_path)
    history.pop("epoch", None)
    finish_run(run, history=history, summary=summary, data_spec=cfg.data.spec,
               evaluate_on=cfg.evaluate_on, evaluate=lambda spec: evaluate(run.path, spec, require_complete=False),
               write_card=lambda metrics: write_card(run, cfg, {**summary, "labels": labels}, metrics))


def main(argv: list[str] | None = None) -> int:
    from sensorium.runtime.errors import SensoriumError

    parser = argparse.ArgumentParser(prog="python -m sensorium.pipelines.image.framing", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an image run directory (a model trained from scratch)")
    parser.add_argument("--out", required=True, help="the run directory to write")
    parser.add_argument("--fraction", type=float, default=MNIST_FRACTION,
                        help="the content box's longer side as a fraction of the frame (default 20/28, MNIST's)")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                        help="content is brighter than this fraction of the brightest pixel (default 0.25)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run = reframe_run(args.model, args.out, fraction=args.fraction, threshold=args.threshold,
                          overwrite=args.overwrite)
    except SensoriumError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {run}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
