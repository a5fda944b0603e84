"""`tfds:NAME[/CONFIG][:VERSION]` specs: TFDS loading with download=False unless the user asks."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sensorium.pipelines.common.dataspec import DataSpec
from sensorium.runtime.errors import DataError, MissingExtraError

log = logging.getLogger(__name__)


def default_data_dir() -> str:
    import os

    return os.environ.get("TFDS_DATA_DIR") or str(Path.home() / "tensorflow_datasets")


def load_tfds(spec: DataSpec, split: str | None, *, data_dir: str | None, download: bool) -> tuple[Any, Any]:
    """(tf.data.Dataset of feature dicts, DatasetInfo) for the spec's split (default `split`)."""
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise MissingExtraError('tfds: data specs need tensorflow-datasets: pip install "sensorium[full]"') from None
    name = spec.name + (f"/{spec.tfds_config}" if spec.tfds_config else "") + (
        f":{spec.tfds_version}" if spec.tfds_version else "")
    data_dir = data_dir or default_data_dir()
    tfds_split = f"{spec.split or split or 'train'}{spec.slice or ''}"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # DatasetNotFoundError, registered-name errors
        raise DataError(f"tfds:{name}: unknown TFDS dataset ({_line(exc)})") from None
    if download:
        try:
            builder.download_and_prepare()
        except Exception as exc:
            raise DataError(f"tfds:{name}: download failed ({_line(exc)})") from None
    elif not Path(builder.data_dir).is_dir():  # prepared datasets live in DATA_DIR/NAME/CONFIG/VERSION
        raise DataError(
            f"tfds:{name} is not prepared in data_dir {data_dir}; prepare it there, point --data-dir at "
            "a folder that holds it, or pass --download (needs internet)"
        )
    splits = list(builder.info.splits.keys())
    if (spec.split or split or "train") not in [*splits, "all"]:  # "all": TFDS's union of every split
        raise DataError(f"tfds:{name} has no '{spec.split or split}' split; it has: {', '.join(splits)}")
    try:
        ds = builder.as_dataset(split=tfds_split, shuffle_files=False)
    except Exception as exc:
        raise DataError(f"tfds:{name}: cannot read split {tfds_split} ({_line(exc)})") from None
    return ds, builder.info


def find_feature(info: Any, kinds: tuple[str, ...], what: str) -> str:
    """The name of the first top-level feature whose class name is one of `kinds` (e.g. 'Image')."""
    for key, feature in info.features.items():
        if type(feature).__name__ in kinds:
            return key
    raise DataError(f"tfds:{info.name} has no {what} feature (features: {', '.join(info.features)})")


def _line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
