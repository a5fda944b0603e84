"""Two more opinions for the lexicon expert of the sentiment binary head (`sensorium.runtime.lexicon_fusion`):
Hu and Liu's opinion lexicon, and a domain's own words.

- **The opinion lexicon** (`assets/lexicons/opinion-lexicon-en.tsv`, 6,786 English words marked positive or
  negative, collected from customer reviews; built from a Debian package by
  `python -m sensorium.pipelines.datasets.opinion_lexicon`). A text's evidence is the sum of its lexicon
  words' signs (a sign flips when one of NEGATORS is among the 3 words before it) divided by the square
  root of their count (0 for a text with none).
- **Domain words**: weights of words learned from a user's own labelled texts when a model is adapted
  to their domain (`train sentiment --init-from`); a text's evidence is the sum of the weights of the
  distinct words it holds. The weights ride in the model's `lexicon_fusion` record.

Both read the same words: `words` lower-cases the text, spells "n't" apart and keeps runs of letters,
digits and ' - + * (the lexicon's own spellings, "2-faces", "a+"). A text is read up to MAX_CHARS.
"""
from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from sensorium.runtime.errors import DataError
from sensorium.runtime.paths import read_capped

OPINION = "opinion"  # the opinion lexicon's name in a `lexicon_fusion` record ("vader-3.3.2+opinion")
OPINION_FILE = "lexicons/opinion-lexicon-en.tsv"  # under the installed sensorium.assets
OPINION_MAX_BYTES = 4 << 20  # the shipped file is 125 KB
NEGATORS = frozenset({"not", "no", "never", "n't", "cannot", "without", "nor", "hardly"})
NEGATION_WINDOW = 3  # words before a lexicon word that can flip it
MAX_CHARS = 20_000  # as VADER's reading in lexicon_fusion
_WORD = re.compile(r"[a-z0-9'\-+*]+")


def words(text: str) -> list[str]:
    """The words of `text` (its first MAX_CHARS characters) as the opinion lexicon spells them."""
    return _WORD.findall(text[:MAX_CHARS].lower().replace("\u2019", "'").replace("n't", " n't"))


def read_opinion_lexicon(path: str | Path) -> dict[str, float]:
    """{word: +1 or -1} from an opinion lexicon file ("# " comment lines, a `word<TAB>sentiment` header,
    then one `word<TAB>positive|negative` row per line); a word listed as both is left out. A missing,
    oversized or malformed file is a one-line DataError."""
    path = Path(path)
    data = read_capped(path, OPINION_MAX_BYTES, "the opinion lexicon")
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise DataError(f"{path}: the opinion lexicon is not UTF-8 text") from None
    rows = [line for line in lines if line and not line.startswith("#")]
    if not rows or rows[0] != "word\tsentiment":
        raise DataError(f"{path}: not an opinion lexicon (no 'word<TAB>sentiment' header)")
    signs: dict[str, float] = {}
    both: set[str] = set()
    for number, line in enumerate(rows[1:], start=2):
        word, _, sentiment = line.partition("\t")
        if sentiment not in ("positive", "negative") or not _WORD.fullmatch(word):
            raise DataError(f"{path}: row {number} of the opinion lexicon is malformed: {line[:60]!r}")
        sign = 1.0 if sentiment == "positive" else -1.0
        if signs.get(word, sign) != sign:
            both.add(word)
        signs[word] = sign
    if len(signs) < 100:
        raise DataError(f"{path}: the opinion lexicon has only {len(signs)} words")
    return {w: s for w, s in signs.items() if w not in both}


@functools.lru_cache(maxsize=1)
def opinion_lexicon() -> dict[str, float]:
    """The shipped opinion lexicon (read once per process); a one-line DataError when it is missing or
    malformed."""
    from sensorium.runtime.predictor import assets_dir

    return read_opinion_lexicon(assets_dir() / OPINION_FILE)


def opinion_evidence(texts: list[str], lexicon: Mapping[str, float] | None = None, *,
                     split: list[list[str]] | None = None) -> np.ndarray:
    """The opinion lexicon's evidence (N,) per text: its words' signs, flipped after a negator, summed and
    divided by the square root of their count (`split`: the texts' `words`, when the caller has them)."""
    lexicon = opinion_lexicon() if lexicon is None else lexicon
    split = [words(t) for t in texts] if split is None else split
    out = np.zeros(len(split), np.float64)
    for i, ws in enumerate(split):
        total, count = 0.0, 0
        for k, w in enumerate(ws):
            sign = lexicon.get(w)
            if sign is None:
                continue
            if any(x in NEGATORS for x in ws[max(0, k - NEGATION_WINDOW):k]):
                sign = -sign
            total += sign
            count += 1
        out[i] = total / math.sqrt(count) if count else 0.0
    return out


def word_evidence(texts: list[str], weights: Mapping[str, float], *,
                  split: list[list[str]] | None = None) -> np.ndarray:
    """The sum of `weights` over the distinct words (N,) of each text (`split`: the texts' `words`)."""
    split = [words(t) for t in texts] if split is None else split
    return np.asarray([sum(weights.get(w, 0.0) for w in set(ws)) for ws in split], np.float64)
