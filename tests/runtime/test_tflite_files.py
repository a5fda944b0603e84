"""A `.tflite`'s packed files are untrusted: caps on count and size, decompression stopped at the cap,
manifests that must be JSON objects, and one-line errors naming the file."""
from __future__ import annotations

import io
import json
import resource
import zipfile
from pathlib import Path

import pytest

from sensorium.runtime import tflite
from sensorium.runtime.errors import ModelError
from sensorium.runtime.tflite import EdgeModel, flatbuffer_part, pack, read_all, read_tflite

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "assets" / "models" / "mnist" / "exports" / "model-int8.tflite"


@pytest.fixture(scope="module")
def flat() -> bytes:
    return flatbuffer_part(BUNDLED.read_bytes())


def _with_archive(flat: bytes, write) -> bytes:
    buf = io.BytesIO(flat)
    buf.seek(0, io.SEEK_END)
    with zipfile.ZipFile(buf, "a", compression=zipfile.ZIP_DEFLATED) as zf:
        write(zf)
    return buf.getvalue()


def test_the_bundled_file_reads_back(flat):
    data, files, manifest = read_tflite(BUNDLED)
    assert data == flat and manifest["task"] == "image" and "labels.txt" in files
    assert read_all(BUNDLED) == files == read_all(BUNDLED.read_bytes())


def test_a_deflate_bomb_is_refused_without_decompressing_it(flat, tmp_path):
    def bomb(zf: zipfile.ZipFile) -> None:
        zf.writestr("sensorium.json", json.dumps({"task": "image"}))
        with zf.open("bomb.bin", "w", force_zip64=True) as member:
            zeros = bytes(32 * 2**20)
            for _ in range(64):  # 2 GiB of zeros, a few MB on disk
                member.write(zeros)

    path = tmp_path / "bomb.tflite"
    path.write_bytes(_with_archive(flat, bomb))
    assert path.stat().st_size < 10 * 2**20
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ModelError, match=r"bomb.tflite: packed file 'bomb.bin' is 2,147,483,648 bytes, over the limit"):
        read_tflite(path)
    with pytest.raises(ModelError, match="over the limit"):
        EdgeModel(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200 * 1024  # KB: no gigabytes read


def test_a_member_that_lies_about_its_size_is_stopped_at_the_cap(flat, monkeypatch):
    monkeypatch.setattr(tflite, "MAX_PACKED_FILE_BYTES", 1000)
    data = _with_archive(flat, lambda zf: zf.writestr("labels.txt", b"x" * 5000))
    with pytest.raises(tflite.AssociatedFilesError, match="'labels.txt' is 5,000 bytes, over the limit of 1,000"):
        read_all(data)
    # a central directory that claims a small size: what is read stays within the cap whatever the data
    lying = bytearray(data)
    where = lying.rfind(b"PK\x01\x02")  # the central directory entry: its uncompressed size at +24
    lying[where + 24: where + 28] = (10).to_bytes(4, "little")
    try:
        assert len(read_all(bytes(lying)).get("labels.txt", b"")) <= 1000
    except tflite.AssociatedFilesError:
        pass


def test_too_many_members_and_bad_manifests(flat, tmp_path):
    many = _with_archive(flat, lambda zf: [zf.writestr(f"f{i}", b"") for i in range(tflite.MAX_PACKED_FILES + 1)])
    with pytest.raises(tflite.AssociatedFilesError, match="65 packed files, over the limit of 64"):
        read_all(many)
    cases = {b"[1, 2]": "is a JSON list, not an object", b"{not json": "is not valid JSON",
             b"[" * 100_000 + b"]" * 100_000: "nested too deeply", b"\xff\xfe": "is not valid JSON"}
    for raw, message in cases.items():
        path = tmp_path / "m.tflite"
        path.write_bytes(pack(flat, {"sensorium.json": raw}))
        with pytest.raises(ModelError, match=message) as info:
            read_tflite(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_not_a_tflite_and_unreadable_paths(tmp_path):
    (tmp_path / "x.tflite").write_bytes(b"PK\x03\x04 not a flatbuffer")
    with pytest.raises(ModelError, match="not a TFLite model"):
        read_tflite(tmp_path / "x.tflite")
    with pytest.raises(ModelError, match="no such model file"):
        read_tflite(tmp_path / "missing.tflite")
    with pytest.raises(ModelError, match="is a folder"):
        read_tflite(tmp_path)


def test_unreadable_labels_are_one_line(flat, tmp_path):
    path = tmp_path / "labels.tflite"
    path.write_bytes(pack(flat, {"sensorium.json": b'{"task": "image"}', "labels.txt": b"cat\n\xff\xfe\n"}))
    with pytest.raises(ModelError, match="labels.txt is not UTF-8 text"):
        _ = EdgeModel(path).labels
    path.write_bytes(pack(flat, {"sensorium.json": b'{"task": "image", "labels": 5}'}))
    with pytest.raises(ModelError, match="labels are not a list of strings"):
        _ = EdgeModel(path).labels
