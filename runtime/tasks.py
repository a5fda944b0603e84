"""The task registry: every task declares its config, its command-line flags and its entry points.

The CLI builds `train TASK`, `evaluate`, `export` and `tune` from this registry, so a new task needs no
new CLI code. Entry points are "module:function" strings imported on use, so listing tasks (and
`--help`) imports no TensorFlow.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from sensorium.runtime.registry import Registry


@dataclass(frozen=True)
class Flag:
    """A command-line option that sets one dotted config key (`--epochs` -> `train.epochs`)."""

    option: str
    key: str
    type: Callable[[str], Any] = str
    help: str = ""
    choices: tuple[str, ...] | None = None
    metavar: str | None = None


@dataclass(frozen=True)
class Task:
    """A task: how to configure, train, evaluate and load it for inference."""

    name: str
    description: str
    config: str  # "module:ConfigClass"
    train: str  # "module:function(config, run_dir, resume) -> dict"
    evaluate: str  # "module:function(artifact, spec, ...) -> dict"
    flags: tuple[Flag, ...] = field(default_factory=tuple)
    batch: str = ""  # "module:BatchTaskClass" for batch evaluation jobs (pipelines/batch)
    search_space: str = ""  # "module:SEARCH_SPACE", what `sensorium tune TASK` varies (pipelines/tuning/space.py)

    def load(self, attr: str) -> Any:
        module, _, name = getattr(self, attr).partition(":")
        return getattr(importlib.import_module(module), name)

    def batch_task(self, options: dict[str, Any] | None = None, context: dict[str, Any] | None = None) -> Any:
        """A new `BatchTask` of this task (see pipelines/batch/task.py)."""
        if not self.batch:
            from sensorium.runtime.errors import UsageError

            raise UsageError(f"batch evaluation jobs are not available for {self.name} models yet")
        return self.load("batch")(options, context)


TASKS: Registry[Task] = Registry("task")


def _int_pair(text: str) -> list[int]:
    """`64` -> [64, 64]; `48x64` -> [48, 64] (height x width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"expected N or HxW, got {text!r}") from None
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"expected N or HxW with positive sizes, got {text!r}")
    return values


def _yes_no(text: str) -> bool:
    if text.lower() in ("yes", "true", "1", "on"):
        return True
    if text.lower() in ("no", "false", "0", "off"):
        return False
    raise ValueError(f"expected yes or no, got {text!r}")


def _int_list(text: str) -> list[int]:
    return [int(p) for p in text.replace(" ", "").split(",") if p]


def _name_list(text: str) -> list[str]:
    """`0,1,2` -> ["0", "1", "2"] (class names as the data names them)."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError(f"expected comma-separated class names, got {text!r}")
    return names


# Options every trainable task shares (the contracts' grammar).
COMMON_TRAIN_FLAGS: tuple[Flag, ...] = (
    Flag("--data", "data.spec", str, "training data spec (SOURCE[@SPLIT]); @train is used by default", metavar="SPEC"),
    Flag("--validation-data", "data.validation_spec", str,
         "validation data spec (default: the source's validation split)", metavar="SPEC"),
    Flag("--epochs", "train.epochs", int, "maximum number of epochs"),
    Flag("--batch-size", "train.batch_size", int, "global batch size"),
    Flag("--learning-rate", "train.learning_rate", float, "peak learning rate"),
    Flag("--optimizer", "train.optimizer", str, "optimizer", choices=("adam", "adamw", "sgd")),
    Flag("--seed", "seed", int, "random seed (splits, initialisation, shuffling)"),
    Flag("--strategy", "train.strategy", str, "tf.distribute strategy: auto (every GPU of this machine), default "
         "(one device), mirrored, or multiworker (the cluster in TF_CONFIG)",
         choices=("auto", "default", "mirrored", "multiworker")),
    Flag("--mixed-precision", "train.mixed_precision", str, "mixed float16 (auto: on a GPU only)",
         choices=("auto", "on", "off")),
    Flag("--patience", "train.early_stopping_patience", int, "early-stopping patience in epochs (0: off)"),
    Flag("--data-dir", "data.data_dir", str, "TFDS data_dir", metavar="DIR"),
)

TASKS.register("image", Task(
    name="image",
    description="image classification with a CNN built from shared blocks",
    config="sensorium.pipelines.image.config:ImageClassificationConfig",
    search_space="sensorium.pipelines.image.config:SEARCH_SPACE",
    train="sensorium.pipelines.image.train:train",
    evaluate="sensorium.pipelines.image.evaluate:evaluate",
    batch="sensorium.pipelines.image.batch:ImageBatchTask",
    flags=COMMON_TRAIN_FLAGS + (
        Flag("--image-size", "model.image_size", _int_pair, "model input size, N or HxW (default: the "
             "backbone's, else 28)", metavar="N|HxW"),
        Flag("--padding", "model.padding", int, "black frame in pixels around the resized image (MNIST-style "
             "framing, e.g. 4 at 28x28)", metavar="PIXELS"),
        Flag("--channels", "model.channels", int, "1 (grayscale model) or 3 (RGB)", choices=None),
        Flag("--architecture", "model.architecture", str, "CNN family", choices=("resnet", "separable", "simple")),
        Flag("--widths", "model.widths", _int_list, "filters per stage, e.g. 32,64,128", metavar="W,W,..."),
        Flag("--backbone", "model.backbone", str, "pretrained backbone: hub:NAME or hub:HANDLE (tfhub.dev/Kaggle "
             "URL, file:// URL or folder of a reusable TF2 SavedModel), or keras:NAME (keras.applications); the "
             "README lists the names", metavar="hub:H|keras:N"),
        Flag("--backbone-weights", "model.backbone_weights", str, "keras: backbones: imagenet (default, needs "
             "internet once), a local .weights.h5 file, or random", metavar="imagenet|FILE|random"),
        Flag("--finetune-epochs", "train.finetune_epochs", int, "phase 2: epochs that also train the backbone"),
        Flag("--finetune-learning-rate", "train.finetune_learning_rate", float, "phase 2 learning rate"),
        Flag("--finetune-pattern", "train.finetune_pattern", str, "phase 2 trains only backbone variables "
             "whose name matches this regex", metavar="REGEX"),
        Flag("--path-column", "data.path_column", str, "manifest column holding image paths"),
        Flag("--label-column", "data.label_column", str, "manifest column holding labels"),
    ),
))

TASKS.register("speech", Task(
    name="speech",
    description="speech recognition: log-mel front end, conv + LSTM encoder, CTC over characters",
    config="sensorium.pipelines.speech.config:SpeechConfig",
    search_space="sensorium.pipelines.speech.config:SEARCH_SPACE",
    train="sensorium.pipelines.speech.train:train",
    evaluate="sensorium.pipelines.speech.evaluate:evaluate",
    batch="sensorium.pipelines.speech.batch:SpeechBatchTask",
    flags=COMMON_TRAIN_FLAGS + (
        Flag("--rnn-units", "model.rnn_units", int, "LSTM units per direction"),
        Flag("--rnn-layers", "model.rnn_layers", int, "number of LSTM layers"),
        Flag("--bidirectional", "model.bidirectional", _yes_no, "bidirectional LSTMs (no: unidirectional, "
             "for streaming)", metavar="yes|no"),
        Flag("--conv-channels", "model.conv_channels", _int_list, "channels of the stride-2 convolutions",
             metavar="C,C,..."),
        Flag("--mel-bins", "model.num_mel_bins", int, "log-mel bins"),
        Flag("--dropout", "model.dropout", float, "dropout after each layer"),
        Flag("--max-seconds", "data.max_seconds", float, "skip training utterances longer than this"),
        Flag("--beam", "beam", int, "decoding beam of the final evaluation (1: greedy)"),
        Flag("--audio-column", "data.audio_column", str, "manifest column holding audio paths"),
        Flag("--text-column", "data.text_column", str, "manifest column holding transcripts"),
    ),
))

TASKS.register("sentiment", Task(
    name="sentiment",
    description="sentiment / text classification: subword tokenizer, Transformer encoder (or a TF Hub text encoder)",
    config="sensorium.pipelines.sentiment.config:SentimentConfig",
    search_space="sensorium.pipelines.sentiment.config:SEARCH_SPACE",
    train="sensorium.pipelines.sentiment.train:train",
    evaluate="sensorium.pipelines.sentiment.evaluate:evaluate",
    batch="sensorium.pipelines.sentiment.batch:SentimentBatchTask",
    flags=COMMON_TRAIN_FLAGS + (
        Flag("--text-column", "data.text_column", str, "CSV/TSV column holding the texts"),
        Flag("--label-column", "data.label_column", str, "CSV/TSV column holding the labels"),
        Flag("--encoder", "model.encoder", str, "transformer (trained from scratch) or hub:NAME|HANDLE, a TF Hub "
             "text encoder taking strings (nnlm-en-dim50, nnlm-en-dim128, universal-sentence-encoder, a URL or a "
             "folder)", metavar="transformer|hub:H"),
        Flag("--max-length", "model.max_length", int, "tokens read per text (longer texts are cut)"),
        Flag("--vocab-size", "model.vocab_size", int, "subword pieces the tokenizer may learn"),
        Flag("--embed-dim", "model.embed_dim", int, "Transformer width"),
        Flag("--num-heads", "model.num_heads", int, "attention heads"),
        Flag("--ff-dim", "model.ff_dim", int, "feed-forward width"),
        Flag("--layers", "model.num_layers", int, "Transformer encoder layers"),
        Flag("--dropout", "model.dropout", float, "dropout inside the encoder"),
        Flag("--class-weights", "train.class_weights", _yes_no, "weight the loss by inverse label frequency",
             metavar="yes|no"),
    ),
))

TASKS.register("translation", Task(
    name="translation",
    description="machine translation: Transformer encoder-decoder over subwords, placeholders protected",
    config="sensorium.pipelines.translation.config:TranslationConfig",
    search_space="sensorium.pipelines.translation.config:SEARCH_SPACE",
    train="sensorium.pipelines.translation.train:train",
    evaluate="sensorium.pipelines.translation.evaluate:evaluate",
    batch="sensorium.pipelines.translation.batch:TranslationBatchTask",
    flags=COMMON_TRAIN_FLAGS + (
        Flag("--language", "data.language", str, "folders of .po/.mo catalogues: the language to read (de, pt_BR)"),
        Flag("--source-language", "data.source_language", str, "TFDS translation data: the source language key"),
        Flag("--target-language", "data.target_language", str, "TFDS translation data: the target language key"),
        Flag("--vocab-size", "model.vocab_size", int, "subword pieces per tokenizer"),
        Flag("--shared-vocab", "model.shared_vocab", _yes_no, "one tokenizer for both languages (no: one each)",
             metavar="yes|no"),
        Flag("--embed-dim", "model.embed_dim", int, "Transformer width"),
        Flag("--num-heads", "model.num_heads", int, "attention heads"),
        Flag("--ff-dim", "model.ff_dim", int, "feed-forward width"),
        Flag("--encoder-layers", "model.encoder_layers", int, "encoder layers"),
        Flag("--decoder-layers", "model.decoder_layers", int, "decoder layers"),
        Flag("--dropout", "model.dropout", float, "dropout"),
        Flag("--max-source-length", "model.max_source_length", int, "source tokens read"),
        Flag("--max-target-length", "model.max_target_length", int, "target tokens generated at most"),
        Flag("--label-smoothing", "train.label_smoothing", float, "label smoothing of the token loss"),
        Flag("--beam", "beam", int, "beam of the final evaluation (1: greedy)"),
    ),
))

# The generative tasks share their model flags; each adds its own.
GENERATIVE_FLAGS: tuple[Flag, ...] = COMMON_TRAIN_FLAGS + (
    Flag("--latent-dim", "model.latent_dim", int, "size of the latent vector / code"),
    Flag("--widths", "model.widths", _int_list, "filters per stride-2 encoder stage, e.g. 32,64 (the decoder / "
         "generator mirrors them)", metavar="W,W,..."),
    Flag("--image-size", "model.image_size", _int_pair, "model image size, N or HxW (default 28)", metavar="N|HxW"),
    Flag("--channels", "model.channels", int, "1 (grayscale model, default) or 3 (RGB)"),
    Flag("--classes", "data.classes", _name_list, "train on these classes only, e.g. 0,1,2,3,4,5,6,7,8",
         metavar="C,C,..."),
    Flag("--eval-samples", "samples", int, "generated images scored in evaluations (vae, gan; default 1000)"),
    Flag("--path-column", "data.path_column", str, "manifest column holding image paths"),
    Flag("--label-column", "data.label_column", str, "manifest column holding labels (for --classes)"),
)

TASKS.register("autoencoder", Task(
    name="autoencoder",
    description="convolutional (denoising) autoencoder: reconstruction, denoising, anomaly scores",
    config="sensorium.pipelines.generative.config:AutoencoderConfig",
    train="sensorium.pipelines.generative.train:train_autoencoder",
    evaluate="sensorium.pipelines.generative.evaluate:evaluate",
    flags=GENERATIVE_FLAGS + (
        Flag("--noise-sigma", "model.noise_sigma", float, "denoising: Gaussian noise sigma on [0, 1] pixels in "
             "training (0: plain autoencoder)", metavar="SIGMA"),
    ),
))

TASKS.register("vae", Task(
    name="vae",
    description="convolutional variational autoencoder: generation from latent vectors, ELBO",
    config="sensorium.pipelines.generative.config:VAEConfig",
    train="sensorium.pipelines.generative.train:train_vae",
    evaluate="sensorium.pipelines.generative.evaluate:evaluate",
    flags=GENERATIVE_FLAGS + (
        Flag("--beta", "model.beta", float, "weight of the KL term (1: the ELBO)"),
        Flag("--latent-prior", "train.latent_prior", str, "where generated latents come from: mixture (a Gaussian "
             "mixture fitted to the training codes, default) or standard (N(0, I))", choices=("mixture", "standard")),
    ),
))

TASKS.register("gan", Task(
    name="gan",
    description="DCGAN: a generator and a discriminator trained against each other",
    config="sensorium.pipelines.generative.config:GANConfig",
    train="sensorium.pipelines.generative.train:train_gan",
    evaluate="sensorium.pipelines.generative.evaluate:evaluate",
    flags=GENERATIVE_FLAGS + (
        Flag("--discriminator-learning-rate", "train.discriminator_learning_rate", float,
             "the discriminator's learning rate (default: --learning-rate)"),
    ),
))
