"""`sensorium data heldout-de` on a fake ephios wheel made here (its hash pinned in place of the real one):
the catalogues read and cleaned like ui-de, `builtin:heldout-de` as a @test-only translation source checked
against its recorded SHA-256, one-line errors for altered or missing wheels, the freeze itself guarded; and
the held-out project kept out of `builtin:ui-de` and `builtin:debian-de` by name (fake wheels and a fake
local Debian mirror). No network: the real set is checked only where `sensorium data heldout-de` built it."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import lzma
import os
import re
import struct
import zipfile
from pathlib import Path

import pytest

from sensorium.apps import main as sensorium_app
from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.datasets import heldout_de as hd
from sensorium.pipelines.datasets.registry import get_builtin
from sensorium.pipelines.datasets.ui_de import HELD_OUT_PROJECTS, build_ui_corpus, held_out_project
from sensorium.pipelines.translation.sources import load_parallel
from sensorium.runtime.errors import DataError

WHEEL = "ephios-0.27.1-py3-none-any.whl"
PO_HEADER = 'msgid ""\nmsgstr ""\n"Language: de\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
DJANGO_PO = PO_HEADER + (
    'msgid "Save event"\nmsgstr "Veranstaltung speichern"\n\n'
    'msgid "Hello %(name)s, your shift starts at {time}."\nmsgstr "Hallo %(name)s, Ihre Schicht beginnt um {time}."\n\n'
    '#, fuzzy\nmsgid "Guess"\nmsgstr "Vermutung"\n\n'  # fuzzy: not read
    'msgid "Untranslated"\nmsgstr ""\n\n'  # untranslated: not read
    'msgid "1 / 2"\nmsgstr "1 / 2"\n\n'  # no letters: dropped
    'msgid "one shift"\nmsgid_plural "%(count)d shifts"\nmsgstr[0] "eine Schicht"\nmsgstr[1] "%(count)d Schichten"\n\n'
    'msgid "Line one\\nline\\ttwo"\nmsgstr "Zeile eins\\nZeile\\tzwei"\n\n'
    '#~ msgid "Old"\n#~ msgstr "Alt"\n'  # obsolete: not read
)
DJANGOJS_PO = PO_HEADER + (
    'msgid "Save event"\nmsgstr "Veranstaltung speichern"\n\n'  # an exact duplicate pair: dropped
    'msgctxt "verb"\nmsgid "Close"\nmsgstr "Schließen"\n\n'
    'msgid "Please confirm."\nmsgstr "Bitte bestätigen Sie."\n'
)
EXPECTED = [("Save event", "Veranstaltung speichern"),
            ("Hello %(name)s, your shift starts at {time}.", "Hallo %(name)s, Ihre Schicht beginnt um {time}."),
            ("one shift", "eine Schicht"), ("%(count)d shifts", "%(count)d Schichten"),
            ("Line one\nline\ttwo", "Zeile eins\nZeile\tzwei"), ("Close", "Schließen"),
            ("Please confirm.", "Bitte bestätigen Sie.")]


def _zip(path: Path, members: dict[str, str | bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as z:
        for name, body in members.items():
            z.writestr(name, body)
    return path


def _ephios_wheel(folder: Path, django_po: str = DJANGO_PO) -> Path:
    return _zip(folder / WHEEL, {
        "ephios/locale/de/LC_MESSAGES/django.po": django_po,
        "ephios/locale/de/LC_MESSAGES/djangojs.po": DJANGOJS_PO,
        "ephios/locale/en/LC_MESSAGES/django.po": PO_HEADER.replace("de", "en") + 'msgid "A"\nmsgstr "A"\n',
        "ephios-0.27.1.dist-info/METADATA": "Metadata-Version: 2.4\nName: ephios\nVersion: 0.27.1\n"
                                            "License-Expression: MIT\n\n",
    })


def _pin(monkeypatch: pytest.MonkeyPatch, wheel_path: Path) -> hd.PinnedWheel:
    """The fake wheel's SHA-256 pinned in place of the real one."""
    fake = dataclasses.replace(hd.EPHIOS, sha256=hashlib.sha256(wheel_path.read_bytes()).hexdigest())
    monkeypatch.setattr(hd, "EPHIOS", fake)
    return fake


# === Build and use ===
def test_build_then_load_as_a_test_only_translation_source(cache, tmp_path, monkeypatch, capsys):
    wheels = tmp_path / "wheels"
    fake = _pin(monkeypatch, _ephios_wheel(wheels))
    with pytest.raises(DataError, match=r"builtin:heldout-de is not set up yet .*run `sensorium data heldout-de`"):
        load_parallel(parse_spec("builtin:heldout-de"), seed=0, default_split="test")
    assert sensorium_app.main(["data", "heldout-de", "--from", str(wheels), "-q"]) == 0
    folder = hd.heldout_dir()
    assert folder == cache / "datasets" / "heldout-de-1"
    assert capsys.readouterr().out.strip() == str(folder)
    info = json.loads((folder / hd.INFO_FILE).read_text(encoding="utf-8"))
    assert info["count"] == len(EXPECTED) and info["raw_pairs"] == 9 and info["identical"] == 0
    assert info["dropped"] == {"duplicate": 1, "no_letters": 1}
    assert info["files"] == ["ephios/locale/de/LC_MESSAGES/django.po", "ephios/locale/de/LC_MESSAGES/djangojs.po"]
    assert info["source"]["sha256"] == fake.sha256 and info["source"]["license_in_wheel"] == "MIT"
    assert info["excluded_from_training_by_name"] == ["ephios"]
    assert info["sha256"] == hashlib.sha256((folder / hd.PAIRS_FILE).read_bytes()).hexdigest()
    card = (folder / hd.CARD_NAME).read_text(encoding="utf-8")
    for text in ("**ephios**", "`builtin:heldout-de@test`", "formal (Sie)", "| MIT |", "Held out by name: ephios",
                 "duplicate 1, no letters 1"):
        assert text in card

    test, split = load_parallel(parse_spec("builtin:heldout-de"), seed=0, default_split="test")
    assert split == "test" and list(zip(test.sources, test.targets)) == EXPECTED
    assert test.ids[0] == "heldout-de/test:2" and test.failures == []
    assert len(load_parallel(parse_spec("builtin:heldout-de@test[:3]"), seed=0, default_split=None)[0]) == 3
    with pytest.raises(DataError, match="'builtin:heldout-de' has no 'train' split; it has: test"):
        load_parallel(parse_spec("builtin:heldout-de@train"), seed=0, default_split="train")

    # a second run keeps the set; --force rebuilds the same bytes
    before = (folder / hd.PAIRS_FILE).read_bytes()
    assert hd.build_heldout(wheels=wheels) == folder
    assert hd.build_heldout(wheels=wheels, overwrite=True) == folder
    assert (folder / hd.PAIRS_FILE).read_bytes() == before
    # an altered file is refused
    (folder / hd.PAIRS_FILE).write_bytes(before.replace("Schließen".encode(), b"Zumachen"))
    with pytest.raises(DataError, match="changed since it was built .*sensorium data heldout-de --force"):
        load_parallel(parse_spec("builtin:heldout-de"), seed=0, default_split="test")


@pytest.mark.parametrize("problem, message", [
    ("altered", r"ephios-0\.27\.1-py3-none-any\.whl: SHA-256 [0-9a-f]{64} is not the pinned [0-9a-f]{64} of "
                r"ephios==0\.27\.1 \(an altered or different wheel\)"),
    ("missing", r"no wheel of ephios==0\.27\.1"),
    ("not a zip", r"not a readable wheel"),
    ("no catalogue", r"ephios-0\.27\.1-py3-none-any\.whl: no de catalogue pairs"),
    ("malformed po", r"ephios-0\.27\.1-py3-none-any\.whl: no de catalogue pairs"),  # the bad file is skipped
])
def test_bad_wheels_fail_in_one_line(cli_errors, problem, message, cache, tmp_path, monkeypatch, capsys):
    wheels = tmp_path / "wheels"
    path = _ephios_wheel(wheels)
    if problem == "not a zip":
        path.write_bytes(b"not a zip archive")
    elif problem == "no catalogue":
        _zip(path, {"ephios/__init__.py": ""})
    elif problem == "malformed po":
        _zip(path, {"ephios/locale/de/LC_MESSAGES/django.po": 'msgid "a\nmsgstr "b"\n'})
    _pin(monkeypatch, path)
    if problem == "altered":
        with open(path, "ab") as fh:
            fh.write(b"\0")
    elif problem == "missing":
        path.unlink()
    assert sensorium_app.main(["data", "heldout-de", "--from", str(wheels), "-q"]) == 1
    errors = cli_errors()
    assert len(errors) == 1 and re.search(message, errors[0]), errors
    assert not hd.heldout_dir().exists()  # nothing half-written


def test_the_pinned_wheel_gives_the_frozen_set_only(cache, tmp_path, monkeypatch):
    """A wheel with the real pin must give the frozen file byte for byte (guards the freeze itself)."""
    fake = _pin(monkeypatch, _ephios_wheel(tmp_path / "wheels"))
    monkeypatch.setattr(hd, "FROZEN_SHA256", {fake.sha256: "0" * 64})
    with pytest.raises(DataError, match=r"builtin:heldout-de: the set built from .* is not the frozen one"):
        hd.build_heldout(wheels=tmp_path / "wheels")
    assert not hd.heldout_dir().exists()


def test_the_pins_and_the_registry_agree():
    assert hd.EPHIOS.sha256 in hd.FROZEN_SHA256 and re.fullmatch(r"[0-9a-f]{64}", hd.FROZEN_SHA256[hd.EPHIOS.sha256])
    assert held_out_project(hd.EPHIOS.dist) == "ephios" and hd.EPHIOS.dist in HELD_OUT_PROJECTS
    entry = get_builtin("heldout-de", "translation")
    assert entry.entry("load") is hd.load_heldout_de and entry.entry("build") is hd.build


# === Kept out of the training corpora ===
@pytest.mark.parametrize("name, catalogues, project", [
    ("ephios", (), "ephios"), ("Ephios", (), "ephios"), ("python3-ephios", (), "ephios"),
    ("ephios-data", (), "ephios"), ("ephios_plugin.x", (), "ephios"), ("node-ephios", (), "ephios"),
    ("shifts", ["usr/lib/python3/dist-packages/ephios/locale/de/LC_MESSAGES/django.mo"], "ephios"),
    ("alpha", ["usr/share/locale/de/LC_MESSAGES/ephios.mo"], "ephios"), ("ephiosx", (), None),
    ("alpha", ["usr/share/locale/de/LC_MESSAGES/ephiosx.mo"], None),
    ("Django", ["django/conf/locale/de/LC_MESSAGES/django.po"], None),
])
def test_held_out_project_by_name_and_by_catalogue_folder(name, catalogues, project):
    assert held_out_project(name, catalogues) == project


def test_ui_corpus_leaves_the_held_out_project_out(tmp_path, caplog):
    wheels = tmp_path / "wheels"
    po = PO_HEADER + 'msgid "Open file"\nmsgstr "Datei öffnen"\n'
    _zip(wheels / "alpha-1.0-py3-none-any.whl", {"alpha/locale/de/LC_MESSAGES/django.po": po})
    _zip(wheels / "bundle-2.0-py3-none-any.whl", {  # a wheel that vendors the project's catalogue
        "bundle/locale/de/LC_MESSAGES/django.po": PO_HEADER + 'msgid "Print"\nmsgstr "Drucken"\n',
        "bundle/vendor/ephios/locale/de/LC_MESSAGES/django.po": DJANGO_PO})
    _ephios_wheel(wheels)
    packages = (("alpha", "1.0"), ("ephios", "0.27.1"), ("bundle", "2.0"))
    with caplog.at_level("WARNING"):
        out = build_ui_corpus(tmp_path / "ui", wheels=wheels, packages=packages)
    assert "leaving out ephios: held out of every training corpus" in caplog.text
    meta = json.loads((out / "corpus.json").read_text(encoding="utf-8"))
    assert list(meta["packages"]) == ["alpha", "bundle"] and meta["pairs"] == 2
    assert meta["held_out"] == {"projects": ["ephios"], "left_out": ["ephios"]}
    assert meta["packages"]["bundle"]["skipped_files"] == [
        "bundle/vendor/ephios/locale/de/LC_MESSAGES/django.po (held-out project ephios)"]
    tsv = "".join((out / f"{s}.tsv").read_text(encoding="utf-8") for s in ("train", "validation", "test"))
    assert "Veranstaltung" not in tsv and "Schicht" not in tsv
    assert "- held out: ephios, the frozen evaluation set `builtin:heldout-de`" in (out / "CORPUS.md").read_text()


def _mo(entries: dict[str, str]) -> bytes:
    """A little-endian .mo file of `entries` (sorted, no hash table)."""
    keys = sorted(entries)
    ids = [k.encode() for k in keys]
    strs = [entries[k].encode() for k in keys]
    n = len(keys)
    start = 28 + 16 * n
    data, orig, trans = b"", [], []
    for table, items in ((orig, ids), (trans, strs)):
        for item in items:
            table.append((len(item), start + len(data)))
            data += item + b"\0"
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    return header + b"".join(struct.pack("<2I", *e) for e in orig + trans) + data


def _deb(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile

    from deb_archives import ar_archive

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    return ar_archive([("debian-binary", b"2.0\n"), ("data.tar.gz", buf.getvalue())])


def test_debian_corpus_leaves_the_held_out_project_out(tmp_path, monkeypatch):
    from sensorium.pipelines.datasets import debian_de

    monkeypatch.setattr(debian_de, "DEBIAN_KEYRING", tmp_path / "no-keyring.gpg")  # an unsigned Release
    header = {"": "Content-Type: text/plain; charset=UTF-8\n"}
    shifts_mo = _mo({**header, "Save event": "Veranstaltung speichern"})
    debs = {  # name -> (catalogue path, .deb)
        "alpha": "usr/share/locale/de/LC_MESSAGES/alpha.mo",
        "python3-ephios": "usr/lib/python3/dist-packages/ephios/locale/de/LC_MESSAGES/django.mo",
        "ephios-data": "usr/share/locale/de/LC_MESSAGES/ephios-data.mo",
        "shifts": "usr/lib/python3/dist-packages/ephios/locale/de_DE/LC_MESSAGES/djangojs.mo",
    }
    root = tmp_path / "mirror"
    index, contents = [], []
    for name, catalogue in debs.items():
        body = _deb({catalogue: _mo({**header, "Open file": "Datei öffnen"}) if name == "alpha" else shifts_mo})
        rel = f"pool/main/{name[0]}/{name}/{name}_1.0_all.deb"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
        index.append(f"Package: {name}\nVersion: 1.0\nFilename: {rel}\nSize: {len(body)}\n"
                     f"SHA256: {hashlib.sha256(body).hexdigest()}\n")
        contents.append(f"{catalogue}    utils/{name}")
    dist = root / "dists" / "bookworm"
    (dist / "main" / "binary-amd64").mkdir(parents=True)
    (dist / "main" / "binary-amd64" / "Packages.xz").write_bytes(lzma.compress("\n".join(index).encode()))
    (dist / "main" / "Contents-all.gz").write_bytes(gzip.compress(("\n".join(contents) + "\n").encode()))
    (dist / "main" / "Contents-amd64.gz").write_bytes(gzip.compress(b""))
    listed = [f" {hashlib.sha256(f.read_bytes()).hexdigest()} {f.stat().st_size} {f.relative_to(dist).as_posix()}"
              for f in sorted(dist.rglob("*")) if f.is_file()]
    (dist / "Release").write_text("Suite: bookworm\nSHA256:\n" + "\n".join(listed) + "\n", encoding="utf-8")

    left: list[str] = []
    packages, _ = debian_de.find_packages(root.as_uri(), "bookworm", "de", held_out=left)
    assert [p.name for p in packages] == ["alpha"] and left == ["ephios-data", "python3-ephios", "shifts"]
    out = debian_de.build_debian_corpus(tmp_path / "deb", mirror=root.as_uri(), workers=1)
    meta = json.loads((out / "corpus.json").read_text(encoding="utf-8"))
    assert list(meta["packages"]) == ["alpha"] and meta["pairs"] == 1
    assert meta["held_out"] == {"projects": ["ephios"], "left_out": ["ephios-data", "python3-ephios", "shifts"]}
    assert "Veranstaltung" not in (out / "train.tsv").read_text(encoding="utf-8")
    assert "left out here: ephios-data, python3-ephios, shifts" in (out / "CORPUS.md").read_text(encoding="utf-8")


# === The real set (built by `sensorium data heldout-de`) ===
def test_the_real_set():
    folder = hd.heldout_dir()
    if not hd.is_built(folder):
        if os.environ.get("CI"):
            pytest.fail(f"the held-out translation set is not built in {folder}; CI builds it during install "
                        "(`sensorium data heldout-de`)")
        pytest.skip(f"the held-out translation set is not built in {folder} (run `sensorium data heldout-de`)")
    info = json.loads((folder / hd.INFO_FILE).read_text(encoding="utf-8"))
    assert info["sha256"] == hd.FROZEN_SHA256[hd.EPHIOS.sha256]
    test = hd.load_heldout_de()["test"]
    assert len(test) == info["count"] == 1103 and len(set(test.sources)) == 1099
    assert ("Save event", "Veranstaltung speichern") in set(zip(test.sources, test.targets))
