import numpy as np
import pytest

from sensorium.pipelines.common.dataspec import SplitSlice, parse_spec
from sensorium.runtime.errors import DataError


def test_builtin_and_split_with_slice():
    spec = parse_spec("builtin:mnist@train[:20%]")
    assert (spec.kind, spec.name, spec.split) == ("builtin", "mnist", "train")
    assert spec.slice == SplitSlice(None, "20%")
    assert spec.source == "builtin:mnist"
    assert spec.tfds_split == "train[:20%]"


def test_tfds_with_config_and_version():
    spec = parse_spec("tfds:mnist/default:3.0.1@test[:500]")
    assert (spec.kind, spec.name, spec.tfds_config, spec.tfds_version) == ("tfds", "mnist", "default", "3.0.1")
    assert spec.tfds_split == "test[:500]"


def test_folder_and_manifest(tmp_path):
    (tmp_path / "list.csv").write_text("path,label\n")
    assert parse_spec(str(tmp_path)).kind == "folder"
    spec = parse_spec(f"{tmp_path / 'list.csv'}@validation")
    assert (spec.kind, spec.split) == ("manifest", "validation")


@pytest.mark.parametrize("text", ["", "nosuchdir/xyz", "s3://bucket/x", "builtin:", "tfds:", "tfds:a b",
                                  "builtin:mnist@dev", "builtin:mnist@train[1:2:3]"])
def test_invalid_specs_list_valid_forms(text):
    with pytest.raises(DataError, match="valid data specs"):
        parse_spec(text)


def test_non_manifest_file_is_rejected(tmp_path):
    f = tmp_path / "x.png"
    f.write_bytes(b"x")
    with pytest.raises(DataError, match="not a .csv/.tsv manifest"):
        parse_spec(str(f))


@pytest.mark.parametrize("sl, expected", [
    (SplitSlice(None, "3"), [0, 1, 2]),
    (SplitSlice("-2", None), [8, 9]),
    (SplitSlice("10%", "30%"), [1, 2]),
    (SplitSlice(None, "50%"), [0, 1, 2, 3, 4]),
])
def test_slices(sl, expected):
    assert sl.apply(list(range(10))) == expected


def test_at_all_means_every_item(tmp_path):
    from sensorium.pipelines.common.sources import Items, select_split

    spec = parse_spec(f"{tmp_path}@all")
    assert spec.split == "all" and spec.chosen_split("test") is None and spec.split_label == "all"
    assert parse_spec(f"{tmp_path}@all[:5]").slice is not None
    items = Items([f"f{i}" for i in range(20)], np.arange(20) % 2, ["a", "b"], [f"f{i}" for i in range(20)])
    chosen, split = select_split(items, spec, seed=0, default_split="test")
    assert len(chosen) == 20 and split == "all"
    parts = {"train": items.take(range(15)), "test": items.take(range(15, 20))}
    assert len(select_split(parts, parse_spec("builtin:mnist@all"), seed=0, default_split="test")[0]) == 20
    assert len(select_split(parts, parse_spec("builtin:mnist"), seed=0, default_split="test")[0]) == 5
