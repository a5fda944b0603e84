"""The model card of an image-classification run (model_card.md in the run directory)."""
from __future__ import annotations

import shlex
import sys
from typing import Any

from sensorium.pipelines.common.reports import write_model_card
from sensorium.pipelines.common.rundir import RunDir
from sensorium.pipelines.image.config import ImageClassificationConfig


def write_card(run: RunDir, cfg: ImageClassificationConfig, summary: dict[str, Any],
               metrics: dict[str, Any] | None) -> None:
    manifest = run.read_manifest()
    command = manifest.get("command") or " ".join(shlex.quote(a) for a in ["sensorium", *sys.argv[1:]])
    labels = summary["labels"]
    sections: dict[str, Any] = {
        "Intended use": (
            f"Classifies images into {len(labels)} classes ({', '.join(labels[:20])}"
            f"{', ...' if len(labels) > 20 else ''}). It takes RGB uint8 pixels of any size; resizing to "
            f"{cfg.model.image_size[0]}x{cfg.model.image_size[1]} and normalisation happen inside the model. "
            "Inputs unlike the training data (other domains, other image statistics) are outside its scope."
        ),
        "Training data": {
            "data spec": cfg.data.spec,
            "training images": summary["train_count"],
            "validation images": summary["validation_count"],
            "seed": cfg.seed,
        },
        "Reproduce": f"```\n{command}\n```\nThe resolved configuration is `config.json` "
                     "(`sensorium train image --config config.json` reruns it).",
        "Model": {
            "architecture": (f"pretrained backbone {cfg.model.backbone}"
                             + (f" (weights: {cfg.model.backbone_weights or 'imagenet'})"
                                if cfg.model.backbone.startswith("keras:") else "")
                             + " with a classification head" if cfg.model.backbone else
                             f"{cfg.model.architecture} CNN, widths {list(cfg.model.widths)}, "
                             f"{cfg.model.blocks_per_stage} block(s) per stage"),
            "input": f"uint8 RGB (B, H, W, 3) -> {3 if cfg.model.backbone else cfg.model.channels} channel(s) at "
                     f"{cfg.model.image_size[0]}x{cfg.model.image_size[1]}"
                     + (f", framed by {cfg.model.padding} black pixels" if cfg.model.padding else ""),
            "augmentation (training only)": cfg.model.augmentation or "none",
            "content framing (in the model)": cfg.model.framing or "none",
            "precision policy": summary["precision_policy"],
        },
        "Training": {
            "optimizer": f"{cfg.train.optimizer}, peak learning rate {cfg.train.learning_rate}, "
                         f"{cfg.train.schedule} schedule",
            "batch size": cfg.train.batch_size,
            "epochs run": summary["epochs"],
            "weights kept": (f"epoch {summary['best_epoch']}, best {cfg.train.monitor} (early stopping, "
                             f"patience {cfg.train.early_stopping_patience})" if cfg.train.early_stopping_patience
                             else f"epoch {summary['epochs']}, the last (fixed schedule, no early stopping)"),
            "stopped early": summary["stopped_early"],
            **({"fine-tuning": f"{cfg.train.epochs} epoch(s) head only on the frozen backbone, then "
                               f"{cfg.train.finetune_epochs} with the backbone"
                               + (f" variables matching {cfg.train.finetune_pattern!r}" if cfg.train.finetune_pattern
                                  else "") + f" at learning rate {cfg.train.finetune_learning_rate}; batch-norm "
                               + ("statistics updated" if cfg.model.backbone_batchnorm_training else
                                  "statistics frozen")} if cfg.model.backbone else {}),
        },
    }
    if metrics is not None:
        m = metrics["metrics"]
        k = next((key for key in m if key.startswith("top_") and key.endswith("_accuracy")), None)
        sections["Evaluation"] = {
            "data": f"{metrics['data']} ({metrics['count']} images)",
            "accuracy": f"{m['accuracy']:.4f}",
            **({k.replace("_", " "): f"{m[k]:.4f}"} if k else {}),
            "macro F1": f"{m['macro_f1']:.4f}",
        }
        sections["Per-class results"] = {label: f"P {v['precision']:.3f} / R {v['recall']:.3f} / F1 {v['f1']:.3f} "
                                                f"(n={v['support']})" for label, v in m["per_class"].items()}
    sections["Limitations"] = [
        "Accuracy is measured on a split of the same source as the training data; it does not carry "
        "over to images from other cameras, scanners or domains.",
        "Scores are softmax probabilities; they are not calibrated confidence.",
    ]
    write_model_card(run.card_path, title=f"Image classifier: {run.path.name}", task="image", sections=sections)
