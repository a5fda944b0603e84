"""The model card of an autoencoder, VAE or GAN run (model_card.md in the run directory)."""
from __future__ import annotations

import shlex
import sys
from typing import Any

from sensorium.pipelines.common.reports import write_model_card
from sensorium.pipelines.common.rundir import RunDir

_TITLES = {"autoencoder": "Autoencoder", "vae": "Variational autoencoder", "gan": "DCGAN"}


def _architecture(task: str, cfg: Any) -> str:
    m = cfg.model
    widths = list(m.widths)
    if task == "autoencoder":
        noise = (f"denoising: Gaussian noise sigma {m.noise_sigma} on the [0, 1] input in training"
                 if m.noise_sigma > 0 else "no input noise")
        return (f"convolutional encoder (stride-2 stages {widths}) -> {m.latent_dim}-d code -> transposed-convolution "
                f"decoder -> sigmoid; MSE loss; {noise}")
    if task == "vae":
        return (f"convolutional encoder (stride-2 stages {widths}) -> z_mean, z_log_var ({m.latent_dim}-d) -> "
                f"reparameterised sample -> transposed-convolution decoder -> sigmoid; loss: Bernoulli NLL + "
                f"{m.beta} x KL")
    return (f"generator: {m.latent_dim}-d N(0, I) latent -> Dense -> transposed convolutions {list(reversed(widths))} "
            f"with batch norm -> sigmoid; discriminator: stride-2 convolutions {list(m.discriminator_widths)}, "
            f"LeakyReLU, dropout {m.discriminator_dropout}; non-saturating BCE, label smoothing {m.label_smoothing}")


def write_card(task: str, run: RunDir, cfg: Any, summary: dict[str, Any], metrics: dict[str, Any] | None) -> None:
    manifest = run.read_manifest()
    command = manifest.get("command") or " ".join(shlex.quote(a) for a in ["sensorium", *sys.argv[1:]])
    size = cfg.model.image_size
    uses = {
        "autoencoder": "Reconstructs images like its training data: denoising (`sensorium denoise`) and anomaly "
                       "scoring by reconstruction error (`sensorium anomaly`) against the threshold in "
                       "`anomaly.json`.",
        "vae": "Generates images like its training data from latent vectors (`sensorium generate`), and encodes / "
               "reconstructs images.",
        "gan": "Generates images like its training data from latent vectors (`sensorium generate`).",
    }[task]
    sections: dict[str, Any] = {
        "Intended use": f"{uses} Inputs are uint8 RGB pixels of any size; scaling, "
                        f"{'grayscale, ' if cfg.model.channels == 1 else ''}and resizing to {size[0]}x{size[1]} happen "
                        "inside the model. Images unlike the training data are outside its scope.",
        "Training data": {
            "data spec": cfg.data.spec,
            "classes": ", ".join(cfg.data.classes) if cfg.data.classes else "all",
            "training images": summary["train_count"],
            "validation images": summary["validation_count"],
            "seed": cfg.seed,
        },
        "Reproduce": f"```\n{command}\n```\nThe resolved configuration is `config.json` "
                     f"(`sensorium train {task} --config config.json` reruns it).",
        "Model": {
            "architecture": _architecture(task, cfg),
            "latent size": cfg.model.latent_dim,
            "image": f"{size[0]}x{size[1]}, {cfg.model.channels} channel(s), values in [0, 1]",
            "precision policy": summary["precision_policy"],
        },
        "Training": {
            "optimizer": f"{cfg.train.optimizer}, learning rate {cfg.train.learning_rate}"
                         + (f" (discriminator {cfg.train.discriminator_learning_rate or cfg.train.learning_rate}, "
                            f"beta_1 {cfg.train.beta_1})" if task == "gan" else "")
                         + f", {cfg.train.schedule} schedule",
            "batch size": cfg.train.batch_size,
            "epochs run": summary["epochs"],
            "weights kept": (f"epoch {summary['best_epoch']}, best {cfg.train.monitor} (early stopping, patience "
                             f"{cfg.train.early_stopping_patience})" if cfg.train.early_stopping_patience
                             else f"epoch {summary['epochs']}, the last"),
            "sample grids": "samples/epoch-NNN.png, one per epoch",
            **({"anomaly threshold": f"{summary['anomaly_threshold']:.6g} (the {cfg.train.anomaly_quantile} quantile "
                                     "of the validation images' reconstruction MSE)"} if task == "autoencoder" else {}),
        },
    }
    if metrics is not None:
        from sensorium.pipelines.generative.evaluate import format_report

        sections["Evaluation"] = (f"{metrics['data']} ({metrics['count']} images):\n\n```\n{format_report(metrics)}\n"
                                  "```")
    sections["Limitations"] = [
        "Reconstruction error and likelihood are measured on a split of the same source as the training data; "
        "they do not carry over to other domains.",
        "Classifier-based scores (confidence, class distribution, Fréchet distance) are only meaningful when the "
        "classifier was trained on data like this model's (the bundled one: MNIST digits).",
    ]
    if task == "autoencoder":
        sections["Limitations"].append("The anomaly threshold flags about "
                                       f"{100 * (1 - cfg.train.anomaly_quantile):.2g}% of normal images by design.")
    write_model_card(run.card_path, title=f"{_TITLES[task]}: {run.path.name}", task=task, sections=sections)
