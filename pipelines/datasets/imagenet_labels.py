"""Human-readable names of the 1,000 ImageNet-1k classes, from sources that packages ship.

- The class order and WordNet synset ids: `imagenet2012/labels.txt` inside the tensorflow-datasets
  wheel (n01440764 ... n15075141, the order of every ImageNet-1k classifier head).
- The names: WordNet 3.0's noun database (`data.noun` of Debian's `wordnet-base`, or any WordNet 3.0
  dict folder); a synset id's digits are the byte offset of its line there.

A class is named by its synset's first lemma (underscores as spaces: "tench", "Egyptian cat"). Where
two classes share a first lemma (crane the bird and crane the machine, two kinds of maillot), each is
qualified by its hypernym's first lemma: "crane (wading bird)", "crane (lifting device)".

Both files are read as untrusted: bounded line lengths, checked formats, one DataError on anything else.
"""
from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from sensorium.runtime.errors import DataError

IMAGENET_CLASSES = 1000
DEFAULT_WORDNET = Path("/usr/share/wordnet")
MAX_LINE = 64 * 1024  # data.noun's longest line is under 12 KB
_SYNSET = re.compile(r"n\d{8}")
_OFFSET_LINE = re.compile(rb"(\d{8}) \d{2} n ([0-9a-f]{2}) ")


@dataclass(frozen=True)
class ImagenetClass:
    synset: str  # "n01440764"
    name: str  # "tench"
    lemmas: tuple[str, ...]  # ("tench", "Tinca tinca")
    gloss: str  # WordNet's definition


def tfds_labels_path() -> Path:
    """tensorflow-datasets' `imagenet2012/labels.txt`, found without importing tensorflow_datasets."""
    spec = importlib.util.find_spec("tensorflow_datasets")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the ImageNet class list comes from tensorflow-datasets, which is not installed")
    for root in spec.submodule_search_locations:
        for rel in ("datasets/imagenet2012/labels.txt", "image_classification/imagenet2012_labels.txt"):
            if (Path(root) / rel).is_file():
                return Path(root) / rel
    raise DataError("this tensorflow-datasets has no imagenet2012 labels.txt")


def read_synsets(path: Path) -> list[str]:
    """The 1,000 synset ids of `path`, one per line, in order."""
    try:
        if path.stat().st_size > 64 * 1024:
            raise DataError(f"{path}: too large for an ImageNet class list")
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable ImageNet class list ({exc})") from None
    bad = next((line for line in lines if not _SYNSET.fullmatch(line)), None)
    if bad is not None or len(lines) != IMAGENET_CLASSES or len(set(lines)) != IMAGENET_CLASSES:
        raise DataError(f"{path}: expected {IMAGENET_CLASSES} distinct WordNet noun ids (nNNNNNNN), "
                        + (f"found {bad[:40]!r}" if bad is not None else f"found {len(set(lines))}"))
    return lines


def _synset_at(fh, offset: int, path: Path) -> tuple[list[str], str, int | None]:
    """(lemmas, gloss, first hypernym offset) of the data.noun line at byte `offset`."""
    fh.seek(offset)
    line = fh.readline(MAX_LINE)
    match = _OFFSET_LINE.match(line)
    if match is None or int(match.group(1)) != offset:
        raise DataError(f"{path}: no WordNet 3.0 noun synset at offset {offset:08d} (not WordNet 3.0's data.noun?)")
    try:
        text = line.decode("utf-8").rstrip("\n")
    except UnicodeDecodeError:
        raise DataError(f"{path}: synset {offset:08d} is not text") from None
    data, _, gloss = text.partition(" | ")
    fields = data.split()
    count = int(fields[3], 16)
    lemmas = [fields[4 + 2 * i].replace("_", " ") for i in range(count)]
    pointers_at = 4 + 2 * count
    hypernym = None
    if len(fields) > pointers_at:
        n_pointers = int(fields[pointers_at])
        for i in range(n_pointers):
            symbol, target, pos = fields[pointers_at + 1 + 4 * i: pointers_at + 4 + 4 * i]
            if symbol in ("@", "@i") and pos == "n":
                hypernym = int(target)
                break
    return lemmas, gloss.strip(), hypernym


def imagenet_classes(wordnet: Path | None = None, labels: Path | None = None) -> list[ImagenetClass]:
    """The 1,000 classes in head order, named from WordNet (rules in the module docstring)."""
    folder = Path(wordnet) if wordnet is not None else DEFAULT_WORDNET
    data_noun = folder / "data.noun" if folder.is_dir() else folder
    if not data_noun.is_file():
        raise DataError(f"{data_noun}: no WordNet noun database; install Debian's wordnet-base "
                        "(apt-get install wordnet-base) or pass --wordnet DIR")
    synsets = read_synsets(labels or tfds_labels_path())
    entries: list[tuple[str, list[str], str, int | None]] = []
    with open(data_noun, "rb") as fh:
        for synset in synsets:
            lemmas, gloss, hypernym = _synset_at(fh, int(synset[1:]), data_noun)
            entries.append((synset, lemmas, gloss, hypernym))
        firsts = [lemmas[0] for _, lemmas, _, _ in entries]
        classes = []
        for synset, lemmas, gloss, hypernym in entries:
            name = lemmas[0]
            if firsts.count(name) > 1 and hypernym is not None:
                name = f"{name} ({_synset_at(fh, hypernym, data_noun)[0][0]})"
            classes.append(ImagenetClass(synset, name, tuple(lemmas), gloss))
    names = [c.name for c in classes]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise DataError(f"ImageNet class names still clash after qualifying: {', '.join(clash[:5])}")
    return classes


def provenance(wordnet: Path | None = None, labels: Path | None = None) -> str:
    """One Markdown paragraph saying where the class names came from (for model cards)."""
    labels = labels or tfds_labels_path()
    return ("Class order and WordNet synset ids: `imagenet2012/labels.txt` of the tensorflow-datasets package "
            f"({labels.name}). Class names: the first lemma of each synset in WordNet 3.0's noun database "
            f"(`{(Path(wordnet) if wordnet else DEFAULT_WORDNET)}/data.noun`, Debian package wordnet-base; "
            "WordNet 3.0 Copyright 2006 by Princeton University, WordNet 3.0 license); a first lemma shared by "
            "two classes is qualified by its hypernym, e.g. \"crane (wading bird)\". `labels.tsv` lists every "
            "class's synset id, name and lemmas.")
