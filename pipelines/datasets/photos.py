"""Real photos that installed packages ship, labelled with ImageNet classes: `builtin:photos`.

There is no ImageNet test split offline; these photos are the bundled ImageNet classifier's regression
floor (each expected class must be in its top 5) and, with crops of them and Debian's Adwaita icons,
the int8 calibration and parity images (`sample_images`).

Every photo is found through the package's install location (no import, no download); a missing
package is a DataError naming it. Licences as the packages state them.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sensorium.pipelines.common.sources import Items
from sensorium.runtime.errors import DataError

ICON_DIRS = (Path("/usr/share/icons/Adwaita/96x96"), Path("/usr/share/icons/Adwaita/64x64"))


@dataclass(frozen=True)
class PackagedPhoto:
    name: str
    package: str  # the importable package that ships it
    path: str  # relative to the package folder
    label: str  # the ImageNet class (WordNet first lemma, as the bundled model names it)
    licence: str


PHOTOS = (
    PackagedPhoto("chelsea", "skimage", "data/chelsea.png", "tabby",
                  "CC0, Stefan van der Walt (scikit-image)"),
    PackagedPhoto("coffee", "skimage", "data/coffee.png", "espresso",
                  "CC0, Rachel Michetti (scikit-image)"),
    PackagedPhoto("camera", "skimage", "data/camera.png", "tripod",
                  "CC0, Lav Varshney (scikit-image); greyscale"),
    PackagedPhoto("rocket", "skimage", "data/rocket.jpg", "missile",
                  "public domain, SpaceX (scikit-image)"),
    PackagedPhoto("china", "sklearn", "datasets/images/china.jpg", "palace",
                  "CC BY 2.0, danielbuechele on Flickr (scikit-learn)"),
    PackagedPhoto("flower", "sklearn", "datasets/images/flower.jpg", "daisy",
                  "CC BY 2.0, vultilion on Flickr (scikit-learn)"),
)


def package_dir(package: str) -> Path:
    """Where `package` is installed, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        pip = {"skimage": "scikit-image", "sklearn": "scikit-learn"}.get(package, package)
        raise DataError(f"the packaged photos need {pip} installed (pip install {pip})")
    return Path(list(spec.submodule_search_locations)[0])


def photo_path(photo: PackagedPhoto) -> Path:
    path = package_dir(photo.package) / photo.path
    if not path.is_file():
        raise DataError(f"{path}: this {photo.package} does not ship {photo.name}")
    return path


def load_photos() -> dict[str, Items]:
    """The `builtin:photos` source: {"test": the photos, labelled with their ImageNet class}."""
    names = sorted({p.label for p in PHOTOS})
    return {"test": Items([str(photo_path(p)) for p in PHOTOS], np.asarray([names.index(p.label) for p in PHOTOS]),
                          names, [f"photos:{p.name}" for p in PHOTOS])}


def _crops(image: np.ndarray, count: int, size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`count` random square crops of 30-100% of the shorter side, resized to size x size."""
    from PIL import Image

    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        side = int(rng.uniform(0.3, 1.0) * min(h, w))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(image[top:top + side, left:left + side])
        out.append(np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR), np.uint8))
    return out


def _icon(path: Path, size: int) -> np.ndarray:
    """An icon PNG composited onto white, resized to size x size RGB."""
    from PIL import Image

    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    ground = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(ground, rgba).convert("RGB").resize((size, size),
                                                                               Image.Resampling.BILINEAR), np.uint8)


def sample_images(count: int, size: int, seed: int) -> np.ndarray:
    """(count, size, size, 3) uint8: about a third random crops of the packaged photos, the rest Debian
    Adwaita icons on white (when installed; otherwise all crops). Seeds give disjoint icon sets
    for seeds 0 and 1 (calibration and parity)."""
    from sensorium.runtime.image_io import load_image

    rng = np.random.default_rng(seed)
    icons = sorted({p for d in ICON_DIRS if d.is_dir() for p in d.rglob("*.png") if not p.is_symlink()},
                   key=lambda p: (p.name, str(p)))
    unique = list({p.name: p for p in icons}.values())
    np.random.default_rng(1234).shuffle(unique)
    half = len(unique) // 2
    mine = unique[:half] if seed % 2 == 0 else unique[half:]
    n_icons = min(len(mine), count - count // 3) if mine else 0
    photos = [load_image(photo_path(p)) for p in PHOTOS]
    per_photo = -(-(count - n_icons) // len(photos))
    crops = [c for im in photos for c in _crops(im, per_photo, size, rng)]
    rng.shuffle(crops)
    chosen = [_icon(p, size) for p in rng.choice(np.asarray(mine, dtype=object), n_icons, replace=False)]
    return np.stack((crops[:count - n_icons] + chosen)[:count])
