"""Hostile inputs: every CLI against a corpus of malicious or broken files, one fresh process per case.

    python tests/benchmarks/hostile_inputs.py [--out DIR] [--only FAMILY ...] [--cases NAME ...]
                                              [--timeout S] [--json FILE] [--markdown] [--list]

The corpus (model files, archives, gettext catalogues, configs, images, audio, text streams, batch job
folders) is built programmatically into a temporary folder (or --out DIR, kept), without network:
bombs are written from one compressed 1 MiB block of zeros repeated (a few KB per GiB), huge files as
sparse files. Each case runs its command (`classify`, `transcribe`, `sentiment`, `translate`,
`sensorium train|evaluate|data`) in a fresh subprocess and its own process group, with its address
space capped at 4 GiB (RLIMIT_AS) so that a bomb cannot take the machine down; the peak RSS is read
with `os.wait4` (ru_maxrss).

A case FAILS when:
- stderr shows a bug: a Python traceback, the CLI's catch-all `error: unexpected <Type>: ...` (or its
  "rerun with --debug" hint), a MemoryError, a fatal error or a core dump;
- it hangs: still running after its time limit (`--timeout`, default 120 s; a few cases that must be
  instant have a tighter budget), then its whole process group is killed;
- it dies of a signal (SIGSEGV, SIGKILL by the OOM killer, ...);
- its peak RSS exceeds 1.5 GiB (1536 MiB);
- it exits 0 where an error was expected (each case says whether success is acceptable: a huge but
  valid image may legitimately be classified, a PNG with surplus IDAT data may be decoded);
- a case's own check fails: a file outside the job folder was modified, the model file made the process
  open a network connection, a YAML tag ran a command, the error does not say why, or a streamed line
  got its result more than 1 s after it arrived.

The table lists: case, family, command, exit code, first error line, wall time, peak RSS (MiB) and the
verdict; `--markdown` prints it as a Markdown table. Exit status: 1 when any case fails, else 0.
Setup problems of the harness itself (a corpus file that could not be built) are shown as ERROR and
also count as failures. Keep the run small while developing: `--only images` or `--cases 'png*'`.
"""
from __future__ import annotations

import argparse
import fnmatch
import functools
import gzip
import io
import json
import lzma
import os
import random
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "assets"
MODELS = ASSETS / "models"
EXAMPLES = ASSETS / "examples"
MNIST_RUN = MODELS / "mnist"
DIGITS_TFLITE = MNIST_RUN / "exports" / "model-int8.tflite"
DIGITS_OTHER_TFLITE = MNIST_RUN / "exports" / "model-float16.tflite"
SENTIMENT_TFLITE = MODELS / "sentiment" / "exports" / "model-float32.tflite"
DIGIT_PNG = EXAMPLES / "digit-2.png"
DIGIT7_PNG = EXAMPLES / "digit-7.png"

FAMILIES = ("models", "archives", "catalogues", "configs", "images", "audio", "text", "jobs")
TOOLS = ("classify", "transcribe", "sentiment", "translate", "sensorium")
MAX_RSS_MB = 1536  # 1.5 GiB
AS_LIMIT = 4 << 30  # the child's address space
GIB = 1 << 30
MO_MAGIC = 0x950412DE
HEAD_BYTES, TAIL_BYTES = 256 * 1024, 64 * 1024
# What a bug looks like on stderr: a traceback, the CLI's catch-all line for unexpected exceptions
# ("error: unexpected ValueError: ... (rerun with --debug for details)"), interpreter crashes.
BUG_PATTERNS = (
    (re.compile(r"Traceback \(most recent call last\)"), "traceback"),
    (re.compile(r"^error: unexpected \w+", re.M), "unexpected error"),
    (re.compile(r"rerun with --debug"), "unexpected error"),
    (re.compile(r"\bMemoryError\b"), "MemoryError"),
    (re.compile(r"Fatal Python error|Segmentation fault|core dumped"), "crash"),
)
LOG_NOISE = re.compile(r"^([IWE]\d{4} |WARNING: All log messages|To enable the following|\d{4}-\d\d-\d\d[ T]\d)")


# ================================================================================================
# Cases and outcomes
# ================================================================================================
@dataclass
class Case:
    name: str
    family: str
    argv: list[str]  # a tool name first (classify, transcribe, sentiment, translate, sensorium)
    why: str  # what is hostile about it, one line
    success_ok: bool = False  # exit 0 is acceptable (else an error is expected)
    timeout: float | None = None  # a tighter limit than --timeout, for cases that must be quick
    prepare: Callable[[], None] | None = None  # writes the case's files (run just before the case)
    check: Callable[[Outcome], str | None] | None = None  # a failure reason, or None
    expect_stderr: str | None = None  # regex the error must match (the error must say why)
    feed: list[tuple[float, bytes]] | None = None  # stdin: (seconds after start, bytes), then EOF
    max_first_latency: float | None = None  # with feed: first stdout line at most this long after line 1


@dataclass
class Outcome:
    case: Case
    code: int | None = None  # exit status; -N: killed by signal N; None: not run
    timed_out: bool = False
    limit: float = 0.0
    wall: float = 0.0
    rss_mb: float = 0.0
    stdout: str = ""
    stderr: str = ""
    stdout_lines: int = 0
    first_line: str = ""
    note: str = ""
    failures: list[str] = field(default_factory=list)
    setup_error: str | None = None
    line_times: list[float] = field(default_factory=list)
    feed_times: list[float] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.setup_error:
            return "ERROR"
        return "FAIL" if self.failures else "PASS"

    def as_json(self) -> dict[str, Any]:
        c = self.case
        return {"case": c.name, "family": c.family, "why": c.why, "command": display_command(c.argv),
                "success_ok": c.success_ok, "exit": self.code, "timed_out": self.timed_out, "limit_s": self.limit,
                "wall_s": round(self.wall, 2), "peak_rss_mb": round(self.rss_mb, 1), "verdict": self.verdict,
                "failures": self.failures, "setup_error": self.setup_error, "first_error_line": self.first_line,
                "note": self.note, "stdout_lines": self.stdout_lines, "stderr_tail": self.stderr[-4000:],
                "stdout_head": self.stdout[:2000]}


# ================================================================================================
# Byte-level builders: bombs, zips, PNGs, WAVs, ar archives
# ================================================================================================
SEGMENT = 1 << 20


@functools.cache
def _zero_block() -> bytes:
    """1 MiB of zeros as raw deflate, ended by a full flush: byte-aligned, no back-reference outside
    itself, not final, so it can be repeated any number of times inside one stream."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(bytes(SEGMENT)) + c.flush(zlib.Z_FULL_FLUSH)


def deflate_zeros(n: int, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    """A raw deflate stream of prefix + n zero bytes + suffix (about 1 KB per MiB of zeros)."""
    parts = []
    if prefix:
        c = zlib.compressobj(9, zlib.DEFLATED, -15)
        parts.append(c.compress(prefix) + c.flush(zlib.Z_FULL_FLUSH))
    full, rest = divmod(n, SEGMENT)
    parts.append(_zero_block() * full)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    parts.append(c.compress(bytes(rest) + suffix) + c.flush())
    return b"".join(parts)


@functools.cache
def _crc_zeros(start: int, n: int) -> int:
    crc, zeros = start, bytes(SEGMENT)
    full, rest = divmod(n, SEGMENT)
    for _ in range(full):
        crc = zlib.crc32(zeros, crc)
    return zlib.crc32(bytes(rest), crc)


def crc32_of(n: int, prefix: bytes = b"", suffix: bytes = b"") -> int:
    return zlib.crc32(suffix, _crc_zeros(zlib.crc32(prefix), n))


def gzip_zeros(n: int, prefix: bytes = b"") -> bytes:
    """A .gz file of prefix + n zeros."""
    body = deflate_zeros(n, prefix)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff" + body
            + struct.pack("<II", crc32_of(n, prefix), (len(prefix) + n) & 0xFFFFFFFF))


def zlib_zeros(n: int) -> bytes:
    """A zlib stream (PNG IDAT payload) of n zeros; adler32 of zeros: a stays 1, b grows by 1 a byte."""
    return b"\x78\xda" + deflate_zeros(n) + struct.pack(">I", ((n % 65521) << 16) | 1)


@dataclass
class ZipEntry:
    name: str
    method: int  # 0 stored, 8 deflated
    payload: bytes
    crc: int
    size: int


def zip_bytes(name: str, data: bytes, deflate: bool = False) -> ZipEntry:
    if deflate:
        c = zlib.compressobj(6, zlib.DEFLATED, -15)
        return ZipEntry(name, 8, c.compress(data) + c.flush(), zlib.crc32(data), len(data))
    return ZipEntry(name, 0, data, zlib.crc32(data), len(data))


def zip_bomb(name: str, n: int, prefix: bytes = b"") -> ZipEntry:
    """A deflated member of prefix + n zeros (n up to ~4 GiB: no zip64 needed)."""
    assert len(prefix) + n < 0xFFFFFFFF
    return ZipEntry(name, 8, deflate_zeros(n, prefix), crc32_of(n, prefix), len(prefix) + n)


def build_zip(entries: list[ZipEntry]) -> bytes:
    """A zip archive written by hand (sizes are declared, never computed by compressing GiBs)."""
    out, central = bytearray(), bytearray()
    for e in entries:
        name, offset = e.name.encode(), len(out)
        out += struct.pack("<4s5H3I2H", b"PK\x03\x04", 20, 0, e.method, 0, 0x21, e.crc, len(e.payload), e.size,
                           len(name), 0) + name + e.payload
        central += struct.pack("<4s6H3I5H2I", b"PK\x01\x02", 20, 20, 0, e.method, 0, 0x21, e.crc, len(e.payload),
                               e.size, len(name), 0, 0, 0, 0, 0o644 << 16, offset) + name
    cd_offset = len(out)
    out += central
    out += struct.pack("<4s4H2IH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), cd_offset, 0)
    return bytes(out)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_zeros(width: int, height: int, color_type: int, bit_depth: int, raw_bytes: int | None = None) -> bytes:
    """A PNG of all-zero pixels whose IDAT holds `raw_bytes` zeros (default: exactly the image's)."""
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    if raw_bytes is None:
        raw_bytes = height * (1 + width * channels * bit_depth // 8)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib_zeros(raw_bytes))
            + png_chunk(b"IEND", b""))


def wav_header(data_size: int, *, fmt_tag: int = 1, channels: int = 1, rate: int = 16000, bits: int = 16,
               riff_size: int | None = None) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    riff = riff_size if riff_size is not None else min(4 + 8 + len(fmt) + 8 + data_size, 0xFFFFFFFF)
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"data" + struct.pack("<I", data_size))


def tone(seconds: float, rate: int = 16000) -> bytes:
    """16-bit PCM of a quiet 440 Hz tone."""
    import numpy as np

    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 3000).astype("<i2").tobytes()


def ar_archive(members: list[tuple[str, bytes, str | None]]) -> bytes:
    """An ar archive (a .deb); a member's size field may be forced to any text (negative, huge)."""
    out = bytearray(b"!<arch>\n")
    for name, data, size_field in members:
        size = size_field if size_field is not None else str(len(data))
        out += f"{name:<16}{'0':<12}{'0':<6}{'0':<6}{'100644':<8}{size:<10}`\n".encode("ascii")
        out += data + (b"\n" if len(data) % 2 else b"")
    return bytes(out)


def tar_bytes(files: dict[str, bytes], mode: str = "w:xz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def deb(data_tar_name: str, data_tar: bytes, *, sizes: dict[str, str] | None = None,
        first: tuple[str, bytes] | None = None) -> bytes:
    """A Debian package: debian-binary, control.tar.xz, `data_tar_name`; `sizes` forces size fields."""
    sizes = sizes or {}
    control = tar_bytes({"./control": b"Package: hostile\nVersion: 1.0\nArchitecture: all\n"})
    members = [("debian-binary", b"2.0\n"), ("control.tar.xz", control), (data_tar_name, data_tar)]
    if first:
        members.insert(0, first)
    return ar_archive([(n, d, sizes.get(n)) for n, d in members])


def mo_bomb(count: int = 8192, length: int = 128 * 1024) -> bytes:
    """A .mo whose `count` entries (original and translation tables overlap) all point at one region of
    `length` bytes: ~200 KB on disk, count * length * 2 bytes (2 GiB) once every string is sliced out."""
    table_at = 28
    region_at = table_at + 8 * count
    header = struct.pack("<7I", MO_MAGIC, 0, count, table_at, table_at, 0, 0)
    return header + struct.pack("<2I", length, region_at) * count + b"a" * length


def mo_file(pairs: list[tuple[bytes, bytes]], magic: int = MO_MAGIC) -> bytes:
    """A well-formed little-endian .mo (or one with another magic number)."""
    count = len(pairs)
    orig_at, trans_at = 28, 28 + 8 * count
    data_at = trans_at + 8 * count
    blob, otab, ttab = bytearray(), bytearray(), bytearray()
    for o, _ in pairs:
        otab += struct.pack("<2I", len(o), data_at + len(blob))
        blob += o + b"\0"
    for _, t in pairs:
        ttab += struct.pack("<2I", len(t), data_at + len(blob))
        blob += t + b"\0"
    return struct.pack("<7I", magic, 0, count, orig_at, trans_at, 0, 0) + otab + ttab + blob


def nested_json(depth: int, open_: str = "[", close: str = "]") -> str:
    return open_ * depth + close * depth


# ================================================================================================
# The corpus: paths, shared files, the network listener, the base batch job
# ================================================================================================
class Listener(threading.Thread):
    """A TCP server on 127.0.0.1 that records every connection (the request line) and answers 404:
    proof that an input made the process reach for the network."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="hostile-listener")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.hits: list[str] = []
        self.start()

    def run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1")
                except OSError:
                    first = "(connected, sent nothing)"
                self.hits.append(first or "(connected, sent nothing)")
                try:
                    conn.sendall(b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                except OSError:
                    pass


class Corpus:
    def __init__(self, root: Path, timeout: float) -> None:
        self.root = root
        self.timeout = timeout
        self._once: dict[str, Any] = {}
        self._lock = threading.RLock()

    def path(self, *parts: str) -> Path:
        p = self.root.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def fresh(self, *parts: str) -> Path:
        """A path with nothing at it (an earlier run's leftovers removed)."""
        p = self.path(*parts)
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)
        return p

    def once(self, key: str, make: Callable[[], Any]) -> Any:
        """make() the first time; later calls get its result (or raise its exception again)."""
        with self._lock:
            if key not in self._once:
                try:
                    self._once[key] = (True, make())
                except Exception as exc:
                    self._once[key] = (False, exc)
            ok, value = self._once[key]
            if not ok:
                raise value
            return value

    # --- shared inputs ---------------------------------------------------------------------
    def listener(self) -> Listener:
        return self.once("listener", Listener)

    def tiny_sentiment_csv(self) -> Path:
        def make() -> Path:
            p = self.path("shared", "tiny_sentiment.csv")
            rows = ["text,label"] + [f"sample text number {i} is {w},{w}"
                                     for i, w in enumerate(["negative", "neutral", "positive"] * 6)]
            p.write_text("\n".join(rows) + "\n", encoding="utf-8")
            return p
        return self.once("tiny_csv", make)

    def digit_folder(self) -> Path:
        """Ten slightly different copies of each bundled digit example, in class sub-folders 2/ and 7/."""
        def make() -> Path:
            from PIL import Image

            root = self.path("shared", "digits")
            for label, src in (("2", DIGIT_PNG), ("7", DIGIT7_PNG)):
                (root / label).mkdir(parents=True, exist_ok=True)
                with Image.open(src) as im:
                    base = im.convert("L")
                for i in range(10):
                    copy = base.copy()
                    copy.putpixel((i, 0), 40 + i)
                    copy.save(root / label / f"{label}-{i}.png")
            return root
        return self.once("digits", make)

    def base_job(self) -> Path:
        """A complete batch job folder (the bundled int8 digits model on two images), made once."""
        def make() -> Path:
            out = self.fresh("shared", "base_job")
            cmd = resolve_argv(evaluate_argv(DIGITS_TFLITE, self.digit_folder(), out))
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=max(self.timeout, 120),
                                  env=child_env(self), cwd=self.path("cwd", "x").parent)
            if done.returncode != 0 or not (out / "job.json").is_file():
                raise RuntimeError(f"the base job did not complete (exit {done.returncode}): "
                                   f"{first_error_line(done.stderr)}")
            return out
        return self.once("base_job", make)

    def job_copy(self, name: str) -> Path:
        dst = self.fresh("jobs", name)
        shutil.copytree(self.base_job(), dst, symlinks=True)
        return dst


def child_env(c: Corpus) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
        "TFHUB_CACHE_DIR": str(c.path("cache", "tfhub", "x").parent), "SENSORIUM_CACHE": str(c.path("cache", "s", "x").parent),
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
    })
    return env


def resolve_argv(argv: list[str]) -> list[str]:
    """`classify ...` -> the console script next to this Python (else `python -m sensorium classify`)."""
    tool, rest = argv[0], argv[1:]
    if tool == "python":
        return [sys.executable, *rest]
    if tool not in TOOLS:
        return argv
    script = Path(sys.executable).parent / tool
    if script.is_file():
        return [str(script), *rest]
    return [sys.executable, "-m", "sensorium", *([] if tool == "sensorium" else [tool]), *rest]


_DISPLAY_ROOTS: list[tuple[str, str]] = []


def shorten_paths(text: str) -> str:
    """The corpus folder and the repository root left out of paths (relative paths read better)."""
    for root, short in _DISPLAY_ROOTS:
        text = text.replace(root + "/", short)
    return text


def display_command(argv: list[str], width: int = 90) -> str:
    args = [shorten_paths(a) for a in argv]
    text = " ".join(a if len(a) <= 60 else a[:40] + f"...({len(a)} chars)" for a in args)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def evaluate_argv(model: Path, data: Path, out: Path) -> list[str]:
    return ["sensorium", "evaluate", "--model", str(model), "--data", f"{data}@train", "--out", str(out)]


def train_translation_argv(data: Path, out: Path) -> list[str]:
    return ["sensorium", "train", "translation", "--data", str(data), "--language", "de", "--out", str(out),
            "--epochs", "1", "--batch-size", "4", "--vocab-size", "400", "--embed-dim", "8", "--num-heads", "1",
            "--ff-dim", "8", "--encoder-layers", "1", "--decoder-layers", "1"]


def train_sentiment_argv(c: Corpus, config: Path, out: Path) -> list[str]:
    return ["sensorium", "train", "sentiment", "--config", str(config), "--data", str(c.tiny_sentiment_csv()),
            "--epochs", "1", "--out", str(out)]


# ================================================================================================
# Families
# ================================================================================================
def _tflite_parts(path: Path) -> tuple[bytes, dict[str, bytes]]:
    """(flatbuffer, packed files) of a Sensorium .tflite."""
    data = path.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {n: z.read(n) for n in z.namelist()}
        first = min(i.header_offset for i in z.infolist())
    assert data[first:first + 4] == b"PK\x03\x04", "unexpected .tflite layout"
    return data[:first], files


def write_tflite(dst: Path, replace: dict[str, bytes | None] | None = None, extra: list[ZipEntry] | None = None,
                 base: Path = DIGITS_TFLITE) -> None:
    flatbuffer, files = _tflite_parts(base)
    for name, data in (replace or {}).items():
        if data is None:
            files.pop(name, None)
        else:
            files[name] = data
    entries = [zip_bytes(n, d) for n, d in sorted(files.items())] + list(extra or [])
    dst.write_bytes(flatbuffer + build_zip(entries))


def write_keras(dst: Path, config: Callable[[bytes], bytes] | None = None,
                entries: Callable[[dict[str, bytes]], list[ZipEntry]] | None = None) -> None:
    """A copy of the bundled digits model.keras with config.json rewritten (or its members replaced)."""
    with zipfile.ZipFile(MNIST_RUN / "model.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    if config is not None:
        members["config.json"] = config(members["config.json"])
    built = entries(members) if entries else [zip_bytes(n, d, deflate=True) for n, d in members.items()]
    dst.write_bytes(build_zip(built))


def hub_config(handle: str) -> Callable[[bytes], bytes]:
    """config.json with the `stem` layer replaced by a HubBackbone loading `handle`."""
    def edit(raw: bytes) -> bytes:
        cfg = json.loads(raw)
        layers = cfg["config"]["layers"]
        for i, layer in enumerate(layers):
            if layer.get("name") == "stem":
                layers[i] = {
                    "module": "sensorium.models.backbones.hub", "class_name": "HubBackbone",
                    "config": {"name": "stem", "trainable": True, "dtype": "float32", "handle": handle,
                               "trainable_pattern": None, "batchnorm_training": False},
                    "registered_name": "sensorium>HubBackbone", "build_config": layer.get("build_config"),
                    "name": "stem", "inbound_nodes": layer["inbound_nodes"],
                }
                return json.dumps(cfg).encode()
        raise RuntimeError("no 'stem' layer in the bundled digits model's config.json")
    return edit


def copy_run_dir(dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in ("sensorium.json", "config.json", "labels.txt", "model.keras"):
        shutil.copy(MNIST_RUN / name, dst / name)
    return dst


def family_models(c: Corpus) -> list[Case]:
    F = "models"
    d = lambda name: c.path("models", name)  # noqa: E731
    digit = str(DIGIT_PNG)
    cases: list[Case] = []

    def other_task() -> None:
        manifest = json.loads(_tflite_parts(DIGITS_TFLITE)[1]["sensorium.json"])
        write_tflite(d("manifest_speech.tflite"), {"sensorium.json": json.dumps({**manifest, "task": "speech"}).encode()})

    def classify(model: Path | str, *more: str) -> list[str]:
        return ["classify", "--model", str(model), digit, *more]

    # --- .keras ---------------------------------------------------------------------------------
    cases.append(Case(
        "keras_hub_handle_port9", F, classify(d("hub_port9.keras")),
        "a .keras whose config names a HubBackbone handle http://127.0.0.1:9/x.tar.gz",
        prepare=lambda: write_keras(d("hub_port9.keras"), hub_config("http://127.0.0.1:9/x.tar.gz"))))

    state: dict[str, int] = {}

    def prep_listener() -> None:
        lst = c.listener()
        state["hits"] = len(lst.hits)
        write_keras(d("hub_listener.keras"), hub_config(f"http://127.0.0.1:{lst.port}/x.tar.gz"))

    def check_listener(_: Outcome) -> str | None:
        lst = c.listener()
        new = lst.hits[state.get("hits", 0):]
        return f"loading the model file made a network request ({new[0][:60]})" if new else None

    cases.append(Case(
        "keras_hub_handle_fetch", F, classify(d("hub_listener.keras")),
        "a .keras whose HubBackbone handle points at a local listener: does loading fetch it?",
        prepare=prep_listener, check=check_listener))

    def big_config(raw: bytes) -> bytes:
        n = (50 * 1000 * 1000) // 3
        return raw.rstrip()[:-1] + b', "padding": [' + b"{}," * n + b"{}]}"

    cases.append(Case(
        "keras_config_50mb", F, classify(d("config_50mb.keras")),
        "a .keras whose config.json is 50 MB (16 million empty objects)",
        prepare=lambda: write_keras(d("config_50mb.keras"), big_config)))
    cases.append(Case(
        "keras_zip_bomb", F, classify(d("zip_bomb.keras")),
        "a .keras whose config.json member inflates to 2 GiB (2 MB file)",
        prepare=lambda: write_keras(d("zip_bomb.keras"), entries=lambda m: [
            zip_bytes("metadata.json", m["metadata.json"], True), zip_bomb("config.json", 2 * GIB),
            zip_bytes("model.weights.h5", m["model.weights.h5"], True)])))

    # --- .tflite --------------------------------------------------------------------------------
    def truncated() -> None:
        data = DIGITS_TFLITE.read_bytes()
        d("truncated.tflite").write_bytes(data[: len(_tflite_parts(DIGITS_TFLITE)[0]) // 2])

    cases.append(Case("tflite_truncated", F, classify(d("truncated.tflite")),
                      "the digits .tflite cut in the middle of its flatbuffer", prepare=truncated))
    cases.append(Case(
        "tflite_2gib_extra_member", F, classify(d("extra_2gib.tflite")),
        "a .tflite with an appended zip member 'padding.bin' that inflates to 2 GiB (valid otherwise)",
        success_ok=True, prepare=lambda: write_tflite(d("extra_2gib.tflite"), extra=[zip_bomb("padding.bin", 2 * GIB)])))
    cases.append(Case(
        "tflite_2gib_manifest", F, classify(d("manifest_2gib.tflite")),
        "a .tflite whose packed sensorium.json inflates to 2 GiB",
        prepare=lambda: write_tflite(d("manifest_2gib.tflite"), {"sensorium.json": None},
                                     [zip_bomb("sensorium.json", 2 * GIB, b'{"task": "image", "pad": "')])))
    cases.append(Case(
        "tflite_manifest_nested", F, classify(d("manifest_nested.tflite")),
        "a .tflite whose sensorium.json is an array nested 100000 deep",
        prepare=lambda: write_tflite(d("manifest_nested.tflite"),
                                     {"sensorium.json": nested_json(100000).encode()})))
    cases.append(Case(
        "tflite_manifest_not_json", F, classify(d("manifest_garbage.tflite")),
        "a .tflite whose sensorium.json is binary garbage",
        prepare=lambda: write_tflite(d("manifest_garbage.tflite"),
                                     {"sensorium.json": b"\xff\xfe{not json\x00" + bytes(range(256))})))
    cases.append(Case(
        "tflite_manifest_list", F, classify(d("manifest_list.tflite")),
        "a .tflite whose sensorium.json is a JSON list, not an object",
        prepare=lambda: write_tflite(d("manifest_list.tflite"), {"sensorium.json": b'[{"task": "image"}]'})))
    cases.append(Case(
        "tflite_manifest_other_task", F, classify(d("manifest_speech.tflite")),
        "the digits .tflite whose sensorium.json says task 'speech'", expect_stderr=r"speech", prepare=other_task))
    cases.append(Case(
        "tflite_labels_not_utf8", F, classify(d("labels_latin1.tflite")),
        "a .tflite whose packed labels.txt is not UTF-8",
        prepare=lambda: write_tflite(d("labels_latin1.tflite"),
                                     {"labels.txt": b"z\xe9ro\none\n\xff\xfe\n" + b"x\n" * 7})))

    # --- run directories ------------------------------------------------------------------------
    def rundir(name: str, files: dict[str, bytes]) -> Callable[[], None]:
        def make() -> None:
            run = copy_run_dir(c.fresh("models", name))
            for fname, data in files.items():
                (run / fname).write_bytes(data)
        return make

    cases.append(Case(
        "rundir_manifest_list", F, classify(d("run_manifest_list")),
        "a run directory whose sensorium.json is a list",
        prepare=rundir("run_manifest_list", {"sensorium.json": b'[{"task": "image", "status": "complete"}]'})))
    cases.append(Case(
        "rundir_manifest_nested", F, classify(d("run_manifest_nested")),
        "a run directory whose sensorium.json nests 10000 arrays deep",
        prepare=rundir("run_manifest_nested", {"sensorium.json": (
            '{"task": "image", "status": "complete", "x": ' + nested_json(10000) + "}").encode()})))
    cases.append(Case(
        "rundir_labels_not_utf8", F, classify(d("run_labels_latin1")),
        "a run directory whose labels.txt is not UTF-8",
        prepare=rundir("run_labels_latin1", {"labels.txt": b"z\xe9ro\none\n\xff\xfe\n" + b"x\n" * 7})))

    # --- wrong task -----------------------------------------------------------------------------
    cases.append(Case("wrong_task_tflite", F, classify(SENTIMENT_TFLITE),
                      "classify given the bundled sentiment .tflite", expect_stderr=r"sentiment"))
    cases.append(Case("wrong_task_rundir", F, ["sentiment", "--model", str(MNIST_RUN), "what a day"],
                      "sentiment given the bundled digits run directory", expect_stderr=r"image"))
    return cases


def make_mirror(root: Path, packages: dict[str, tuple[bytes, list[str]]], *,
                contents_all: bytes | None = None) -> str:
    """A file:// Debian mirror of `packages` (name -> (.deb bytes, catalogue paths inside it)): an unsigned
    dists/bookworm/Release listing the SHA-256 of main/Contents-*.gz and Packages.xz, whose entries give
    each .deb's SHA-256 (so a reader that checks hashes still reaches the hostile bytes)."""
    import hashlib

    dist = root / "dists" / "bookworm"
    (dist / "main" / "binary-amd64").mkdir(parents=True, exist_ok=True)
    lines, blocks = [], []
    for name, (deb_bytes, paths) in sorted(packages.items()):
        lines += [f"{p:<70} localization/{name}" for p in paths]
        filename = f"pool/main/{name[0]}/{name}/{name}_1.0_all.deb"
        (root / filename).parent.mkdir(parents=True, exist_ok=True)
        (root / filename).write_bytes(deb_bytes)
        blocks.append(f"Package: {name}\nVersion: 1.0\nFilename: {filename}\nSize: {len(deb_bytes)}\n"
                      f"SHA256: {hashlib.sha256(deb_bytes).hexdigest()}\n")
    indices = {
        "main/Contents-all.gz": contents_all if contents_all is not None
        else gzip.compress(("\n".join(lines) + "\n").encode()),
        "main/Contents-amd64.gz": gzip.compress(b""),
        "main/binary-amd64/Packages.xz": lzma.compress("\n".join(blocks).encode()),
    }
    release = ["Origin: Hostile", "Suite: bookworm", "Codename: bookworm", "Components: main", "SHA256:"]
    for path, data in indices.items():
        (dist / path).write_bytes(data)
        release.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {path}")
    (dist / "Release").write_text("\n".join(release) + "\n")
    return root.as_uri()


# Runs a parser of pipelines/datasets/debian_de.py on one file, with the CLI's contract: a DataError is
# one "error: ..." line and exit 1, anything else a traceback (a bug).
DEBIAN_DRIVER = """\
import sys
from pathlib import Path

from sensorium.pipelines.datasets import debian_de
from sensorium.runtime.errors import SensoriumError

kind, path, *catalogues = sys.argv[1:]
data = Path(path).read_bytes()
try:
    if kind == "deb":
        read = debian_de.read_deb(data, debian_de.DebPackage("hostile", catalogues=catalogues))
        problems = ([read.error] if read.error else []) + list(read.skipped_files)
        if problems or not read.pairs:
            print(f"error: {'; '.join(problems) or 'no catalogue pairs read'}", file=sys.stderr)
            sys.exit(1)
        print(f"{len(read.pairs)} pairs from {len(read.files)} catalogues")
    else:
        index = debian_de.catalogue_index(data, "de")
        print(f"{sum(map(len, index.values()))} catalogue paths in {len(index)} packages")
except SensoriumError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


def family_archives(c: Corpus) -> list[Case]:
    F = "archives"
    cases: list[Case] = []
    mo_path = "usr/share/locale/de/LC_MESSAGES/hostile.mo"
    driver = c.path("drivers", "debian_driver.py")

    def driver_case(name: str, why: str, suffix: str, make: Callable[[], bytes], kind: str = "deb",
                    **kw: Any) -> Case:
        target = c.path("archives", name + suffix)

        def prepare() -> None:
            driver.write_text(DEBIAN_DRIVER)
            target.write_bytes(make())
        return Case(name, F, ["python", str(driver), kind, str(target), *([mo_path] if kind == "deb" else [])],
                    why, prepare=prepare, **kw)

    def prep_mo_folder() -> None:
        p = c.fresh("archives", "mo_bomb_folder")
        (p / "de" / "LC_MESSAGES").mkdir(parents=True)
        (p / "de" / "LC_MESSAGES" / "bomb.mo").write_bytes(mo_bomb())
        c.fresh("archives", "mo_bomb_run")

    cases.append(Case(
        "mo_bomb_catalogue_folder", F,
        train_translation_argv(c.path("archives", "mo_bomb_folder"), c.path("archives", "mo_bomb_run")),
        "a 192 KB .mo whose 8192 entries all point at one 128 KiB region (2 GiB once sliced), as training data",
        prepare=prep_mo_folder))
    cases.append(driver_case(
        "deb_mo_bomb", "read_deb: a .deb (data.tar.xz of a few KB) holding the overlapping-entries .mo bomb",
        ".deb", lambda: deb("data.tar.xz", tar_bytes({"./" + mo_path: mo_bomb()}))))
    cases.append(driver_case(
        "deb_negative_ar_size", "read_deb: an ar member header with the size -60 (the parser never advances)",
        ".deb", lambda: deb("data.tar.xz", tar_bytes({"./" + mo_path: mo_file([(b"Hello", b"Hallo")])}),
                            sizes={"data.tar.xz": "-60"})))
    cases.append(driver_case(
        "deb_huge_ar_size", "read_deb: the first ar member claims 9999999999 bytes",
        ".deb", lambda: deb("data.tar.xz", tar_bytes({"./" + mo_path: mo_file([(b"Hello", b"Hallo")])}),
                            sizes={"debian-binary": "9999999999"})))

    def tar_gz_bomb() -> bytes:
        info = tarfile.TarInfo("./" + mo_path)
        info.size, info.mode, info.mtime = 2 * GIB, 0o644, 0
        header = info.tobuf(format=tarfile.GNU_FORMAT)
        return gzip_zeros(2 * GIB + 1024 + 10240, header)  # the member, then the end-of-archive blocks

    cases.append(driver_case(
        "deb_data_tar_gz_bomb", "read_deb: data.tar.gz holding a 2 GiB catalogue member (2 MB .deb)",
        ".deb", lambda: deb("data.tar.gz", tar_gz_bomb())))
    cases.append(driver_case(
        "contents_gz_bomb", "catalogue_index: a Contents-all.gz that inflates to 2 GiB (bounded streaming is fine)",
        ".gz", lambda: gzip_zeros(2 * GIB, f"{mo_path}   localization/hostile\n".encode()), kind="contents",
        success_ok=True))

    mirror = c.path("archives", "mirror", "x").parent

    def prep_mirror() -> None:
        c.fresh("archives", "mirror")
        c.fresh("archives", "mirror_corpus")
        make_mirror(mirror, {"hostile": (deb("data.tar.xz", tar_bytes({"./" + mo_path: mo_bomb()})), [mo_path])},
                    contents_all=gzip_zeros(2 * GIB, f"{mo_path}   localization/hostile\n".encode()))

    cases.append(Case(
        "debian_mirror_bombs", F,
        ["sensorium", "data", "debian-de", "--mirror", mirror.as_uri(), "--out", str(c.path("archives", "mirror_corpus"))],
        "sensorium data debian-de on a local, unsigned mirror: 2 GiB Contents index, .mo bomb package",
        prepare=prep_mirror))

    wheels = c.path("archives", "wheels", "x").parent

    def prep_wheels() -> None:
        sys.path.insert(0, str(ROOT))  # the UI package list: read from the code it exercises
        from sensorium.pipelines.datasets.ui_de import UI_PACKAGES

        folder = c.fresh("archives", "wheels")
        folder.mkdir(parents=True)
        c.fresh("archives", "ui_corpus")
        for i, (name, version) in enumerate(UI_PACKAGES):
            dist = re.sub(r"[-_.]+", "_", name).lower()
            entries = [zip_bytes(f"{dist}-{version}.dist-info/METADATA",
                                 f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n".encode())]
            if i == 0:
                entries.append(zip_bomb(f"{dist}/conf/locale/de/LC_MESSAGES/django.po", 2 * GIB,
                                        b'msgid "Hello"\nmsgstr "Hallo"\n\n#. '))
            (folder / f"{dist}-{version}-py3-none-any.whl").write_bytes(build_zip(entries))

    cases.append(Case(
        "wheel_bomb_ui_de", F,
        ["sensorium", "data", "ui-de", "--from", str(wheels), "--out", str(c.path("archives", "ui_corpus"))],
        "the pinned UI wheels, Django's holding a de .po member that inflates to 2 GiB", prepare=prep_wheels))
    return cases


# Parses one catalogue with pipelines/datasets/catalogs.py (read_po / read_mo), no TensorFlow: the parser's own
# time and memory. A DataError is one "error: ..." line and exit 1, anything else a traceback (a bug).
CATALOG_DRIVER = """\
import sys

from sensorium.pipelines.datasets.catalogs import read_mo, read_po
from sensorium.runtime.errors import SensoriumError

path = sys.argv[1]
try:
    pairs = (read_mo if path.endswith(".mo") else read_po)(path)
except SensoriumError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
print(f"{len(pairs)} pairs")
"""


def family_catalogues(c: Corpus) -> list[Case]:
    F = "catalogues"
    cases: list[Case] = []
    driver = c.path("drivers", "catalog_driver.py")
    header = b'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n"Language: de\\n"\n\n'

    def catalogue_case(name: str, why: str, filename: str, content: Callable[[], bytes], **kw: Any) -> Case:
        folder = c.path("catalogues", name, "data")
        run = c.path("catalogues", name, "run")

        def prepare() -> None:
            c.fresh("catalogues", name)
            target = c.path("catalogues", name, "data", "de", "LC_MESSAGES", filename)
            target.write_bytes(content())
        return Case(name, F, train_translation_argv(folder, run), why, prepare=prepare, **kw)

    cases.append(catalogue_case(
        "po_4mb_continuation", "a .po msgid continued over 800000 lines (4 MB) of \"ab\" strings",
        "messages.po", lambda: header + b'msgid "start"\n' + b'"ab"\n' * 800_000 + b'msgstr ""\n'))
    parse_target = c.path("catalogues", "po_4mb_continuation_parse", "messages.po")

    def prep_parse() -> None:
        driver.write_text(CATALOG_DRIVER)
        parse_target.write_bytes(header + b'msgid "start"\n' + b'"ab"\n' * 800_000 + b'msgstr ""\n')

    cases.append(Case(
        "po_4mb_continuation_parse", F, ["python", str(driver), str(parse_target)],
        "read_po alone on the 4 MB continuation .po: a linear parser takes about a second", success_ok=True,
        timeout=10, prepare=prep_parse))
    cases.append(catalogue_case(
        "po_unterminated_string", "a .po whose msgid string (1 MB, escapes) never closes",
        "messages.po", lambda: header + b'msgid "' + b"\\\\x\\t" * 250_000 + b'\nmsgstr "Hallo"\n'))
    cases.append(catalogue_case(
        "po_unknown_charset", "a .po whose header names charset=klingon",
        "messages.po", lambda: header.replace(b"UTF-8", b"klingon") + b'msgid "Hello"\nmsgstr "Hallo"\n'))
    cases.append(catalogue_case(
        "po_non_text_codec", "a .po whose header names charset=rot13 (a codec, but not a text encoding)",
        "messages.po", lambda: header.replace(b"UTF-8", b"rot13") + b'msgid "Hello"\nmsgstr "Hallo"\n'))
    cases.append(catalogue_case(
        "po_binary_garbage", "64 KB of random bytes named messages.po",
        "messages.po", lambda: random.Random(1).randbytes(65536)))
    cases.append(catalogue_case(
        "mo_wrong_magic", "a .mo whose magic number is 0xdeadbeef",
        "messages.mo", lambda: mo_file([(b"", b"Content-Type: text/plain; charset=UTF-8\n"), (b"Hello", b"Hallo")],
                                       magic=0xDEADBEEF)))
    return cases


def family_configs(c: Corpus) -> list[Case]:
    F = "configs"
    cases: list[Case] = []

    def config_case(name: str, why: str, filename: str, content: Callable[[], bytes], **kw: Any) -> Case:
        path = c.path("configs", name, filename)
        run = c.path("configs", name, "run")

        def prepare() -> None:
            c.fresh("configs", name)
            c.path("configs", name, filename).write_bytes(content())
        return Case(name, F, train_sentiment_argv(c, path, run), why, prepare=prepare, **kw)

    def laughs() -> bytes:
        rows = ["seed:", '  - &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        names = "abcdefghij"
        for prev, cur in zip(names, names[1:]):
            rows.append(f"  - &{cur} [" + ", ".join([f"*{prev}"] * 9) + "]")
        return ("\n".join(rows) + "\n").encode()

    cases.append(config_case("yaml_billion_laughs", "a YAML config of nested aliases (9^10 'lol's when expanded)",
                             "config.yaml", laughs))
    cases.append(config_case("json_100mb", "a 100 MB JSON config (33 million empty objects under 'seed')",
                             "config.json", lambda: b'{"seed": [' + b"{}," * 33_000_000 + b"{}]}"))
    cases.append(config_case("json_nested_100000", "a JSON config nested 100000 arrays deep",
                             "config.json", lambda: ('{"seed": ' + nested_json(100000) + "}").encode()))
    cases.append(config_case("config_wrong_types", "a config with labels: 5 and train: [] (with --epochs 1)",
                             "config.json", lambda: b'{"labels": 5, "train": []}'))
    cases.append(config_case("config_wrong_types_nested", "a config with train.epochs \"1\" and model.vocab_size null",
                             "config.json",
                             lambda: b'{"train": {"epochs": "1", "batch_size": -3}, "model": {"vocab_size": null}}'))
    marker = c.path("configs", "yaml_python_tag", "PWNED")

    def check_marker(_: Outcome) -> str | None:
        return f"the YAML tag ran a command (it created {marker.name})" if marker.exists() else None

    cases.append(config_case(
        "yaml_python_tag", "a YAML config with !!python/object/apply:os.system", "config.yaml",
        lambda: f'seed: !!python/object/apply:os.system ["touch {marker}"]\n'.encode(), check=check_marker))
    return cases


def family_images(c: Corpus) -> list[Case]:
    F = "images"
    d = lambda name: c.path("images", name)  # noqa: E731
    cases: list[Case] = []

    def prep_png16() -> None:
        data = png_zeros(8000, 8000, 0, 16)
        for i in range(4):
            d(f"gray16_8000_{i}.png").write_bytes(data)

    def prep_jpeg() -> None:
        import numpy as np
        from PIL import Image

        rng = np.random.default_rng(0)
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(buf, "JPEG", quality=90)
        d("truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])

    def prep_gif() -> None:
        from PIL import Image

        frames = []
        for i in range(4000):
            im = Image.new("P", (64, 64), 0)
            im.putpixel((i % 64, (i // 64) % 64), 1 + i % 200)
            frames.append(im)
        frames[0].save(d("frames_4000.gif"), save_all=True, append_images=frames[1:], duration=10, loop=0,
                       optimize=False, disposal=1)

    cases.append(Case("png_rgba_10000", F, ["classify", str(d("rgba_10000.png"))],
                      "a 10000x10000 RGBA PNG (400 KB file, 400 MB of pixels, at the 100 MP limit)", success_ok=True,
                      prepare=lambda: d("rgba_10000.png").write_bytes(png_zeros(10000, 10000, 6, 8))))
    cases.append(Case("png16_8000_x4", F, ["classify", *(str(d(f"gray16_8000_{i}.png")) for i in range(4))],
                      "four 16-bit grayscale 8000x8000 PNGs in one call", success_ok=True, prepare=prep_png16))
    cases.append(Case("jpeg_truncated", F, ["classify", str(d("truncated.jpg"))],
                      "a JPEG cut in half", prepare=prep_jpeg))
    cases.append(Case("gif_4000_frames", F, ["classify", str(d("frames_4000.gif"))],
                      "an animated GIF of 4000 frames", success_ok=True, prepare=prep_gif))
    cases.append(Case("png_idat_bomb", F, ["classify", str(d("idat_bomb.png"))],
                      "a 1024x1024 RGB PNG whose IDAT inflates to 2 GiB (700x the pixels)", success_ok=True,
                      prepare=lambda: d("idat_bomb.png").write_bytes(png_zeros(1024, 1024, 2, 8, raw_bytes=2 * GIB))))
    cases.append(Case("png_over_limit_header", F, ["classify", str(d("huge_header.png"))],
                      "a PNG header claiming 50000x50000 with a small IDAT",
                      prepare=lambda: d("huge_header.png").write_bytes(png_zeros(50000, 50000, 2, 8,
                                                                                 raw_bytes=1 << 20))))
    cases.append(Case("text_named_png", F, ["classify", str(d("notes.png"))], "a text file named .png",
                      prepare=lambda: d("notes.png").write_text("this is not an image\n" * 100)))
    return cases


def family_audio(c: Corpus) -> list[Case]:
    F = "audio"
    d = lambda name: c.path("audio", name)  # noqa: E731
    cases: list[Case] = []

    def prep_nan() -> None:
        samples = struct.pack("<f", float("nan")) * 16000
        d("nan.wav").write_bytes(wav_header(len(samples), fmt_tag=3, bits=32) + samples)

    def prep_13h() -> None:
        size = 13 * 3600 * 16000 * 2
        with open(d("silence_13h.wav"), "wb") as fh:
            fh.write(wav_header(size))
            fh.truncate(fh.tell() + size)  # sparse: no disk blocks

    def prep_flac() -> None:
        import numpy as np
        import soundfile as sf

        buf = io.BytesIO()
        pcm = np.frombuffer(tone(3.0), dtype="<i2")
        sf.write(buf, pcm, 16000, format="FLAC", subtype="PCM_16")
        data = buf.getvalue()
        d("truncated.flac").write_bytes(data[: int(len(data) * 0.6)])

    cases.append(Case("wav_header_2e31_frames", F, ["transcribe", str(d("lying_header.wav"))],
                      "a 16-bit WAV whose data chunk claims 2^31 frames (1 s present)", success_ok=True,
                      prepare=lambda: d("lying_header.wav").write_bytes(wav_header(0xFFFFFFFE) + tone(1.0))))
    cases.append(Case("wav_empty", F, ["transcribe", str(d("empty.wav"))], "a 0-byte .wav",
                      prepare=lambda: d("empty.wav").write_bytes(b"")))
    cases.append(Case("wav_nan_float", F, ["transcribe", str(d("nan.wav"))], "a float WAV of NaN samples",
                      prepare=prep_nan))
    cases.append(Case("wav_13h_sparse", F, ["transcribe", str(d("silence_13h.wav"))],
                      "a 1.5 GB sparse WAV: 13 hours of silence (over the 12 h limit)", prepare=prep_13h))
    cases.append(Case("mp3_random_bytes", F, ["transcribe", str(d("random.mp3"))],
                      "64 KB of random bytes named .mp3 (success: garbage decoded as audio, tolerated)",
                      success_ok=True, prepare=lambda: d("random.mp3").write_bytes(random.Random(2).randbytes(65536))))
    cases.append(Case("flac_truncated", F, ["transcribe", str(d("truncated.flac"))],
                      "a 3 s FLAC cut at 60% (mid-frame); decoding what is there is fine", success_ok=True,
                      prepare=prep_flac))
    return cases


def family_text(c: Corpus) -> list[Case]:
    F = "text"
    d = lambda name: c.path("text", name)  # noqa: E731
    cases: list[Case] = []

    def prep_big_line() -> None:
        with open(d("line_50mb.txt"), "wb") as fh:
            block = b"great flight " * 80_000
            for _ in range(50):
                fh.write(block[:1_000_000])
            fh.write(b"\n")

    cases.append(Case("sentiment_50mb_line", F, ["sentiment", "--file", str(d("line_50mb.txt"))],
                      "a 50 MB single line to sentiment --file", prepare=prep_big_line))
    cases.append(Case("sentiment_invalid_utf8", F, ["sentiment", "--file", str(d("latin1.txt"))],
                      "a stream of invalid UTF-8 lines",
                      prepare=lambda: d("latin1.txt").write_bytes(b"caf\xe9 au lait\n\xff\xfe bad\n\xc3\x28\n")))
    placeholders = " ".join(f"<ph{i}>" for i in range(17))
    cases.append(Case("translate_17_placeholders", F, ["translate", "--beam", "1", f"Save {placeholders} now"],
                      "translate a text with 17 distinct literal <ph0>..<ph16>", success_ok=True, timeout=60))
    cases.append(Case("translate_regex_bomb_30", F, ["translate", "--beam", "1", "{{a" + "|b:" * 30],
                      "translate '{{a' + '|b:' * 30 (placeholder regex backtracking)", success_ok=True, timeout=30))
    cases.append(Case("translate_regex_bomb_1000", F, ["translate", "--beam", "1", "{{a" + "|b:" * 1000],
                      "translate '{{a' + '|b:' * 1000", success_ok=True, timeout=30))
    cases.append(Case("sentiment_nul_binary", F, ["sentiment", "--file", str(d("nul.txt"))],
                      "a file of NUL bytes (with a little text) to sentiment --file",
                      prepare=lambda: d("nul.txt").write_bytes(b"good\n" + b"\x00" * 8000 + b"\nbad\n")))
    cases.append(Case("sentiment_nul_inline", F, ["sentiment", "--file", str(d("nul_inline.txt"))],
                      "a few NUL bytes inside lines of an ordinary text file", success_ok=True,
                      prepare=lambda: d("nul_inline.txt").write_bytes(
                          b"good\x00day\nbad\x00\x00flight\n" + b"an ordinary line of text\n" * 40)))
    feed = [(2.0 + 0.2 * i, f"line {i}: the crew was lovely\n".encode()) for i in range(16)]
    cases.append(Case("sentiment_slow_pipe", F, ["sentiment", "--file", "-"],
                      "sentiment --file - fed one line per 0.2 s for 3 s: first result within 1 s of its line",
                      success_ok=True, feed=feed, max_first_latency=1.0, timeout=60))
    tfeed = [(2.0 + 0.2 * i, f"Save file {i}\n".encode()) for i in range(16)]
    cases.append(Case("translate_slow_pipe", F, ["translate", "--beam", "1", "--file", "-"],
                      "translate --file - fed one line per 0.2 s for 3 s: first result within 1 s of its line",
                      success_ok=True, feed=tfeed, max_first_latency=1.0, timeout=60))
    return cases


def family_jobs(c: Corpus) -> list[Case]:
    F = "jobs"
    cases: list[Case] = []
    data = c.path("shared", "digits")
    job = lambda name: c.path("jobs", name)  # noqa: E731
    outside = c.path("jobs", "outside", "precious.txt")
    precious = b"precious data outside the job folder: must not change\n"

    def prep_symlink() -> None:
        c.digit_folder()
        folder = c.job_copy("results_symlink")
        outside.write_bytes(precious)
        (folder / "results.jsonl").unlink()
        (folder / "results.jsonl").symlink_to(outside)

    def check_outside(_: Outcome) -> str | None:
        if outside.is_symlink() or not outside.is_file():
            return "the file outside the job folder was replaced or removed"
        now = outside.read_bytes()
        if now != precious:
            return f"the file outside the job folder was modified ({len(precious)} -> {len(now)} bytes)"
        return None

    def prep_copy(name: str, files: dict[str, bytes]) -> Callable[[], None]:
        def make() -> None:
            c.digit_folder()
            folder = c.job_copy(name)
            for fname, content in files.items():
                (folder / fname).write_bytes(content)
        return make

    def prep_garbage() -> None:
        c.digit_folder()
        folder = c.job_copy("results_garbage")
        first = (folder / "results.jsonl").read_bytes().splitlines(keepends=True)[0]
        (folder / "results.jsonl").write_bytes(first + b'{"index": Infinity, "id": "x", "ok": true}\n'
                                               + b"\x00\xff garbage {{{\n" + b"[1, 2]\n")

    def prep_file() -> None:
        c.digit_folder()
        c.fresh("jobs", "a_file")
        job("a_file").write_text("I am a file, not a folder\n")

    cases.append(Case("job_results_symlink", F, evaluate_argv(DIGITS_TFLITE, data, job("results_symlink")),
                      "evaluate --out DIR whose results.jsonl is a symlink to a file outside DIR", success_ok=True,
                      prepare=prep_symlink, check=check_outside))
    cases.append(Case("job_json_list", F, evaluate_argv(DIGITS_TFLITE, data, job("json_list")),
                      "a job folder whose job.json is a JSON list",
                      prepare=prep_copy("json_list", {"job.json": b"[1, 2, 3]\n"})))
    cases.append(Case("job_json_nested", F, evaluate_argv(DIGITS_TFLITE, data, job("json_nested")),
                      "a job folder whose job.json nests 100000 arrays deep",
                      prepare=prep_copy("json_nested", {"job.json": nested_json(100000).encode()})))
    cases.append(Case("job_results_garbage", F, evaluate_argv(DIGITS_TFLITE, data, job("results_garbage")),
                      "results.jsonl with garbage lines ({\"index\": Infinity}, binary, a list); repair is fine",
                      success_ok=True, prepare=prep_garbage))
    cases.append(Case("job_other_model", F, evaluate_argv(DIGITS_OTHER_TFLITE, data, job("other_model")),
                      "a job folder made with the int8 digits model, evaluated with the float16 one",
                      expect_stderr=r"(?i)another|model", prepare=prep_copy("other_model", {})))
    cases.append(Case("job_folder_is_file", F, evaluate_argv(DIGITS_TFLITE, data, job("a_file")),
                      "evaluate --out FILE where FILE is a regular file", prepare=prep_file))
    return cases


BUILDERS: dict[str, Callable[[Corpus], list[Case]]] = {
    "models": family_models, "archives": family_archives, "catalogues": family_catalogues,
    "configs": family_configs, "images": family_images, "audio": family_audio, "text": family_text,
    "jobs": family_jobs,
}


# ================================================================================================
# Running one case
# ================================================================================================
class Capture(threading.Thread):
    """Reads a pipe to its end, keeping its head and tail (and when each line arrived)."""

    def __init__(self, stream: Any, times: bool = False) -> None:
        super().__init__(daemon=True)
        self.stream, self.times = stream, times
        self.head, self.tail, self.total, self.lines = bytearray(), b"", 0, 0
        self.line_times: list[float] = []
        self.start()

    def run(self) -> None:
        try:
            while True:
                chunk = self.stream.readline(65536) if self.times else self.stream.read1(65536)
                if not chunk:
                    break
                if chunk.endswith(b"\n"):
                    self.lines += 1
                    if self.times and len(self.line_times) < 10000:
                        self.line_times.append(time.monotonic())
                self.total += len(chunk)
                room = HEAD_BYTES - len(self.head)
                if room > 0:
                    self.head += chunk[:room]
                    chunk = chunk[room:]
                if chunk:
                    self.tail = (self.tail + chunk)[-TAIL_BYTES:]
        except (OSError, ValueError):
            pass

    def text(self) -> str:
        data = bytes(self.head)
        skipped = self.total - len(self.head) - len(self.tail)
        if skipped > 0:
            data += f"\n[... {skipped} bytes left out ...]\n".encode()
        return (data + self.tail).decode("utf-8", errors="replace")


def _child_limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _feeder(proc: subprocess.Popen, feed: list[tuple[float, bytes]], t0: float, times: list[float]) -> None:
    try:
        for at, data in feed:
            delay = t0 + at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            proc.stdin.write(data)
            proc.stdin.flush()
            times.append(time.monotonic())
    except (OSError, ValueError):
        pass
    finally:
        try:
            proc.stdin.close()
        except (OSError, ValueError):
            pass


def first_error_line(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith("error:"):
            return ln
    if "Traceback (most recent call last)" in stderr:
        for ln in reversed(lines):
            if re.match(r"^[\w.]+(Error|Exception|Exit|Interrupt|Warning)\b", ln):
                return ln
    for ln in lines:
        if not LOG_NOISE.match(ln):
            return ln
    return ""


def run_case(c: Corpus, case: Case, timeout: float) -> Outcome:
    out = Outcome(case)
    limit = timeout if case.timeout is None else min(case.timeout, timeout)
    out.limit = limit
    try:
        if case.prepare is not None:
            case.prepare()
    except Exception as exc:  # a harness problem, not the product's: shown as ERROR
        out.setup_error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
        out.failures.append(f"setup failed: {out.setup_error}")
        return out

    argv = resolve_argv(case.argv)
    cwd = c.path("cwd", "x").parent
    start = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if case.feed else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_child_limits,
                                start_new_session=True, env=child_env(c), cwd=cwd)
    except OSError as exc:
        out.setup_error = f"cannot start {argv[0]}: {exc}"
        out.failures.append(out.setup_error)
        return out
    stdout, stderr = Capture(proc.stdout, times=True), Capture(proc.stderr)
    feeder = None
    if case.feed:
        feeder = threading.Thread(target=_feeder, args=(proc, case.feed, start, out.feed_times), daemon=True)
        feeder.start()
    status, usage = 0, None
    try:
        while True:
            try:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            except ChildProcessError:
                break
            if pid:
                break
            if time.monotonic() - start > limit:
                out.timed_out = True
                _kill_group(proc.pid)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
    except BaseException:  # Ctrl-C in the harness: the child has its own session, so end it here
        _kill_group(proc.pid)
        raise
    out.wall = time.monotonic() - start
    _kill_group(proc.pid)  # leftovers of the group (a decoder subprocess, ...)
    out.code = os.waitstatus_to_exitcode(status)
    proc.returncode = out.code  # reaped here with wait4; keep Popen from waiting again
    for t in (stdout, stderr, feeder):
        if t is not None:
            t.join(timeout=5)
    for stream in (proc.stdout, proc.stderr, proc.stdin):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass
    out.rss_mb = (usage.ru_maxrss / 1024) if usage is not None else 0.0
    out.stdout, out.stderr, out.stdout_lines = stdout.text(), stderr.text(), stdout.lines
    out.line_times = stdout.line_times
    out.first_line = first_error_line(out.stderr)
    if out.code == 0 and not out.first_line and out.stdout.strip():
        out.note = "stdout: " + out.stdout.strip().splitlines()[0][:80]
    judge(out)
    return out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def judge(out: Outcome) -> None:
    case, f = out.case, out.failures
    if out.timed_out:
        f.append(f"hang: killed after {out.limit:.0f} s")
    elif out.code is not None and out.code < 0:
        try:
            name = signal.Signals(-out.code).name
        except ValueError:
            name = f"signal {-out.code}"
        f.append(f"killed by {name}")
    seen = set()
    for pattern, label in BUG_PATTERNS:
        if label not in seen and pattern.search(out.stderr):
            seen.add(label)
            f.append(label)
    if out.rss_mb > MAX_RSS_MB:
        f.append(f"peak RSS {out.rss_mb:.0f} MB > {MAX_RSS_MB} MB")
    if out.code == 0 and not case.success_ok and not out.timed_out:
        f.append("exit 0 where an error was expected")
    if case.expect_stderr and out.code not in (0, None) and not out.timed_out \
            and not re.search(case.expect_stderr, out.first_line or out.stderr):
        f.append(f"the error does not say why (expected /{case.expect_stderr}/)")
    if case.feed is not None and case.max_first_latency is not None:
        if not out.feed_times:
            f.append("could not feed standard input")
        elif not out.line_times:
            f.append("no result line on stdout")
        else:
            latency = out.line_times[0] - out.feed_times[0]
            out.note = (f"first result {latency:.2f} s after its line; {out.stdout_lines} results for "
                        f"{len(out.feed_times)} lines")
            if latency > case.max_first_latency:
                f.append(f"first result {latency:.1f} s after its line (limit {case.max_first_latency:.0f} s)")
    if case.check is not None:
        try:
            problem = case.check(out)
        except Exception as exc:
            problem = f"check failed: {type(exc).__name__}: {exc}"
        if problem:
            f.append(problem)


# ================================================================================================
# Reporting
# ================================================================================================
COLUMNS = ("case", "family", "command", "exit", "first error line", "wall s", "peak RSS MB", "verdict")


def row(o: Outcome, width: int) -> list[str]:
    if o.setup_error:
        code = "-"
    elif o.timed_out:
        code = "timeout"
    elif o.code is not None and o.code < 0:
        try:
            code = signal.Signals(-o.code).name
        except ValueError:
            code = str(o.code)
    else:
        code = str(o.code)
    line = o.first_line or o.note or o.setup_error or ""
    if o.note and o.first_line:
        line = f"{o.first_line} [{o.note}]"
    line = " ".join(shorten_paths(line).split())
    if len(line) > width:
        line = line[: width - 3] + "..."
    verdict = o.verdict + (": " + "; ".join(o.failures) if o.failures and not o.setup_error else "")
    return [o.case.name, o.case.family, display_command(o.case.argv, 60), code, line, f"{o.wall:.1f}",
            f"{o.rss_mb:.0f}", verdict]


def markdown_table(outcomes: list[Outcome]) -> str:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("`", "'")

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for o in outcomes:
        r = row(o, 110)
        r[2] = display_command(o.case.argv, 100)
        r[2] = f"`{r[2]}`".replace("|", "\\|")
        lines.append("| " + " | ".join([cell(x) if i != 2 else x for i, x in enumerate(r)]) + " |")
    return "\n".join(lines)


def text_table(outcomes: list[Outcome]) -> str:
    rows = [list(COLUMNS)] + [row(o, 70) for o in outcomes]
    widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS) - 1)]
    out = []
    for r in rows:
        out.append("  ".join(r[i].ljust(widths[i]) for i in range(len(COLUMNS) - 1)) + "  " + r[-1])
        if r is rows[0]:
            out.append("  ".join("-" * w for w in widths) + "  " + "-" * 7)
    return "\n".join(out)


# ================================================================================================
# Main
# ================================================================================================
def collect(c: Corpus, families: list[str], patterns: list[str] | None) -> list[Case]:
    cases: list[Case] = []
    for family in families:
        try:
            built = BUILDERS[family](c)
        except Exception as exc:  # a family that cannot even describe its cases: one ERROR row
            built = [Case(f"{family}_build", family, ["true"], "building the family's cases",
                          prepare=functools.partial(_raise, exc))]
        cases += built
    if patterns:
        cases = [k for k in cases if any(fnmatch.fnmatchcase(k.name, p) for p in patterns)]
    return cases


def _raise(exc: BaseException) -> None:
    raise exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="families: " + ", ".join(FAMILIES))
    parser.add_argument("--out", metavar="DIR", help="build the corpus here and keep it (default: a temporary folder)")
    parser.add_argument("--only", nargs="+", metavar="FAMILY", choices=FAMILIES, help="run only these families")
    parser.add_argument("--cases", nargs="+", metavar="NAME", help="run only these cases (shell patterns: 'png*')")
    parser.add_argument("--timeout", type=float, default=120.0, metavar="S",
                        help="seconds before a case counts as a hang (default 120; some cases have a tighter limit)")
    parser.add_argument("--json", metavar="FILE", help="write every outcome (stderr tail included) as JSON")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    families = list(args.only or FAMILIES)
    tmp = None
    if args.out:
        root = Path(args.out).resolve()
        root.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="sensorium-hostile-")
        root = Path(tmp.name)
    _DISPLAY_ROOTS[:] = [(str(root), ""), (str(ROOT), "")]
    corpus = Corpus(root, args.timeout)
    cases = collect(corpus, families, args.cases)
    if args.list:
        for k in cases:
            print(f"{k.name:32} {k.family:11} {'ok-if-success' if k.success_ok else 'error-expected':15} {k.why}")
        return 0
    if not cases:
        print("no case matches", file=sys.stderr)
        return 2

    started = time.monotonic()
    outcomes: list[Outcome] = []
    try:
        for i, case in enumerate(cases, 1):
            print(f"[{i}/{len(cases)}] {case.name} ...", end="", file=sys.stderr, flush=True)
            try:
                outcome = run_case(corpus, case, args.timeout)
            except Exception as exc:  # the harness itself broke on this case: record it and go on
                outcome = Outcome(case, setup_error=f"harness: {type(exc).__name__}: {exc}")
                outcome.failures.append(outcome.setup_error)
            outcomes.append(outcome)
            print(f" {outcome.verdict} ({outcome.wall:.1f} s, {outcome.rss_mb:.0f} MB)"
                  + (f" - {'; '.join(outcome.failures)}" if outcome.failures else ""), file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting the cases run so far", file=sys.stderr)
    total = time.monotonic() - started

    print(markdown_table(outcomes) if args.markdown else text_table(outcomes))
    failed = [o for o in outcomes if o.failures]
    print()
    print(f"{len(outcomes)} cases in {total:.0f} s: {len(outcomes) - len(failed)} passed, {len(failed)} failed"
          + (f" ({', '.join(o.case.name for o in failed)})" if failed else ""))
    if args.out:
        print(f"corpus kept in {root}")
    if args.json:
        Path(args.json).write_text(json.dumps({"root": str(root), "seconds": round(total, 1),
                                               "max_rss_mb": MAX_RSS_MB, "address_space_limit": AS_LIMIT,
                                               "outcomes": [o.as_json() for o in outcomes]}, indent=2) + "\n",
                                   encoding="utf-8")
    if tmp is not None:
        tmp.cleanup()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
