"""The opinion lexicon builder: the R XDR unserializer on hand-built blobs, the .deb path on hand-built
packages, and (slow) the byte-identical rebuild of assets/lexicons/opinion-lexicon-en.tsv."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import lzma
import os
import struct
import tarfile
import zlib
from pathlib import Path

import pytest

from sensorium.pipelines.datasets.opinion_lexicon import (
    PIN,
    DebPin,
    RObject,
    Symbol,
    build_lexicon,
    main,
    read_lexicon,
    unserialize,
)
from sensorium.runtime.errors import DataError

LEXICON = Path(__file__).resolve().parents[2] / "assets" / "lexicons" / "opinion-lexicon-en.tsv"
UTF8, LATIN1, ATTR, TAG = 1 << 15, 1 << 14, 1 << 9, 1 << 10


# === Hand-built R serializations ===
def i32(*values: int) -> bytes:
    return struct.pack(f">{len(values)}i", *values)


def header(version: int = 3) -> bytes:
    return b"X\n" + i32(version, 0x040202, 0x030500) + (i32(5) + b"UTF-8" if version == 3 else b"")


def char(s: str | None, flags: int = UTF8) -> bytes:
    if s is None:
        return i32(9, -1)
    raw = s.encode("latin-1" if flags == LATIN1 else "utf-8")
    return i32(9 | flags, len(raw)) + raw


def strs(*items: str | None) -> bytes:
    return i32(16, len(items)) + b"".join(map(char, items))


def symbol(name: str) -> bytes:
    return i32(1) + char(name)


def tagged(*cells: tuple[bytes, bytes]) -> bytes:
    """A pairlist of (tag, value) cells, ending in NULL."""
    return b"".join(i32(2 | TAG) + tag + value for tag, value in cells) + i32(254)


def ref(index: int, packed: bool = True) -> bytes:
    return i32(index << 8 | 255) if packed else i32(255, index)


def frame(words: list[str | None], labels: list[str]) -> bytes:
    """A tibble with the character columns word and sentiment (compact row names c(NA, -n))."""
    return (i32(19 | ATTR, 2) + strs(*words) + strs(*labels)
            + tagged((symbol("names"), strs("word", "sentiment")),
                     (symbol("row.names"), i32(13, 2, -(2**31), -len(words))),
                     (symbol("class"), strs("tbl_df", "tbl", "data.frame"))))


def lazyload(words: list[str | None], labels: list[str], compressed: bytes = i32(10, 1, 1)) -> dict[str, bytes]:
    """Rdata.rdx and Rdata.rdb members holding `sentiments` after another object, laid out like R's."""
    other, body = header(2) + i32(254), header() + frame(words, labels)
    rdb = b"".join(struct.pack(">I", len(b)) + zlib.compress(b) for b in (other, body))
    first = 4 + len(zlib.compress(other))
    variables = (i32(19 | ATTR, 2) + i32(13, 2, 0, first) + i32(13, 2, first, len(rdb) - first)
                 + tagged((symbol("names"), strs("other", "sentiments"))))  # the first symbol: reference 1
    rdx = (header() + i32(19 | ATTR, 3) + variables + i32(19, 0) + compressed
           + tagged((ref(1), strs("variables", "references", "compressed"))))
    return {PIN.rdx: gzip.compress(rdx), PIN.rdb: rdb}


def test_strsxp_with_na_and_encodings():
    blob = header(2) + i32(16, 4) + char("good") + char(None) + char("café") + char("naïve", LATIN1)
    obj = unserialize(blob, "blob")
    assert isinstance(obj, RObject) and obj.sexptype == 16
    assert obj.value == ["good", None, "café", "naïve"]
    assert unserialize(header(3) + i32(10, 3, 1, 0, -(2**31)), "blob").value == [True, False, None]
    assert unserialize(header() + i32(14, 1) + struct.pack(">d", 2.5), "blob").value == [2.5]


def test_named_list_with_back_references():
    blob = (header() + i32(19 | ATTR, 3)
            + i32(19 | ATTR, 1) + strs("x") + tagged((symbol("names"), strs("inner")))  # symbol 1: names
            + i32(2 | TAG) + ref(1, packed=False) + symbol("other") + i32(254)  # symbol 2: other
            + ref(2)
            + tagged((ref(1), strs("a", "b", "c"))))
    obj = unserialize(blob, "blob")
    assert obj.names() == ["a", "b", "c"]
    inner, pairs, other = obj.value
    assert inner.names() == ["inner"] and inner.value[0].value == ["x"]
    assert pairs.sexptype == 2 and pairs.value == [("names", Symbol("other"))]
    assert other is pairs.value[0][1]


def test_data_frame_is_read_into_rows_and_written_in_order(tmp_path):
    rows = read_lexicon(lazyload(["2-faces", "abound", "zest"], ["negative", "positive", "positive"]))
    assert rows == [("2-faces", "negative"), ("abound", "positive"), ("zest", "positive")]
    with pytest.raises(DataError, match=r"row 2 \('b', 'neutral'\)"):
        read_lexicon(lazyload(["a", "b"], ["positive", "neutral"]))
    with pytest.raises(DataError, match=r"row 1 \(None"):
        read_lexicon(lazyload([None], ["positive"]))
    with pytest.raises(DataError, match="not zlib"):
        read_lexicon(lazyload(["a"], ["positive"], compressed=i32(13, 1, 3)))


@pytest.mark.parametrize("blob, message", [
    (header() + i32(3), r"unsupported R SEXP type 3 \(CLOSXP\)"),
    (header() + i32(4), r"unsupported R SEXP type 4 \(ENVSXP\)"),
    (header() + i32(24, 1, 0), r"unsupported R SEXP type 24 \(RAWSXP\)"),
    (header() + i32(99), r"unsupported R SEXP type 99 \(unknown\)"),
    (header() + ref(1), "reference 1 to one of 0 objects"),
    (header() + i32(16, 2**31 - 1) + char("a"), "a vector of 2147483647 elements"),
    (header() + i32(19, 1) * 100 + i32(254), "nested deeper than 64"),
    (header(4) + i32(254), "format 4"),
    (b"RDX3\n" + header(), "no XDR header"),
    (header() + i32(254, 0), "4 bytes after the object"),
    (header() + char("\xe9", LATIN1).replace(i32(9 | LATIN1), i32(9 | UTF8)), "not UTF-8"),
])
def test_unreadable_serializations_are_one_data_error(blob, message):
    with pytest.raises(DataError, match=message):
        unserialize(blob, "blob")


def test_every_truncation_is_a_data_error():
    blob = header() + frame(["abandon", None], ["negative", "positive"])
    assert unserialize(blob, "blob").names() == ["word", "sentiment"]
    for n in range(len(blob)):
        with pytest.raises(DataError, match="blob: "):
            unserialize(blob[:n], "blob")


# === The .deb ===
def ar(*members: tuple[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, body in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(body):<10}".encode() + b"`\n" + body
        out += b"\n" if len(body) % 2 else b""
    return out


def fake_deb(tmp_path: Path, members: dict[str, bytes], data_name: str = "data.tar.xz") -> tuple[Path, DebPin]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(f"./{name}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    data = lzma.compress(buf.getvalue()) if data_name.endswith(".xz") else buf.getvalue()
    deb = tmp_path / "fake.deb"
    deb.write_bytes(ar(("debian-binary", b"2.0\n"), ("control.tar.xz", lzma.compress(b"")), (data_name, data)))
    return deb, dataclasses.replace(PIN, sha256=hashlib.sha256(deb.read_bytes()).hexdigest())


def test_a_package_is_read_through_ar_tar_and_lazyload(tmp_path):
    deb, pin = fake_deb(tmp_path, lazyload(["abound", "abuse"], ["positive", "negative"]))
    out = build_lexicon(tmp_path / "out.tsv", deb, pin)
    lines = out.read_text().split("\n")
    counts = "# 2 rows: 1 positive, 1 negative, in the source's order."
    assert lines[:6] == LEXICON.read_text().split("\n")[:5] + [counts]
    assert lines[6:] == ["word\tsentiment", "abound\tpositive", "abuse\tnegative", ""]
    deb, pin = fake_deb(tmp_path, lazyload(["a"], ["positive"]), "data.tar.zst")
    with pytest.raises(DataError, match="no data.tar.xz or data.tar.gz member .*zstd"):
        build_lexicon(tmp_path / "out2.tsv", deb, pin)
    deb, pin = fake_deb(tmp_path, {PIN.rdx: b""})
    with pytest.raises(DataError, match="no regular file .*Rdata.rdb"):
        build_lexicon(tmp_path / "out2.tsv", deb, pin)
    assert not (tmp_path / "out2.tsv").exists()


def test_a_package_with_another_sha256_is_refused(tmp_path, cli_errors):
    deb = tmp_path / "r-cran-tidytext_0.4.1-1_all.deb"
    deb.write_bytes(os.urandom(64))
    with pytest.raises(DataError, match=f"SHA-256 [0-9a-f]{{64}} is not the pinned {PIN.sha256}"):
        build_lexicon(tmp_path / "out.tsv", deb)
    assert main(["--deb", str(deb), "--out", str(tmp_path / "out.tsv")]) == 1
    errors = cli_errors()
    assert len(errors) == 1 and "is not the pinned" in errors[0]
    assert not (tmp_path / "out.tsv").exists()


@pytest.mark.slow
def test_the_bundled_lexicon_is_rebuilt_byte_for_byte(tmp_path):
    """From SENSORIUM_TIDYTEXT_DEB when it names a file, else `apt-get download` (bookworm apt sources)."""
    local = os.environ.get("SENSORIUM_TIDYTEXT_DEB")
    deb = Path(local) if local and Path(local).is_file() else None
    out = build_lexicon(tmp_path / "opinion-lexicon-en.tsv", deb)
    assert out.read_bytes() == LEXICON.read_bytes()
