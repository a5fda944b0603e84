"""Word vocabularies for lexicon-constrained CTC decoding (numpy-free, no TensorFlow).

A `Vocabulary` is a set of words spelled in a model's alphabet, held as a character trie: the
decoder (`sensorium.runtime.ctc.lexicon_beam_decode`) may only spell words of the trie, so a
recogniser that half-hears "fiev" on an unfamiliar voice still writes "five". That is how classic
recognisers survive voices and microphones they never heard.

Sources:
- a text file (`Vocabulary.from_file`): UTF-8, words separated by whitespace, one or more per line,
  lines starting with "#" skipped; words are NFKC-normalised, lower-cased and stripped of invisible
  format characters, and must then be made of the model's letters (numbers spelled out: "four",
  not "4");
- a list of words (`Vocabulary.from_words`), e.g. the words of a model's training transcripts, which
  speech models built by Sensorium carry in their metadata (`info["vocabulary"]`).

Every problem (missing, empty, not UTF-8, too large, a word with a character outside the alphabet)
is one `InputError` line.
"""
from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sensorium.runtime.errors import InputError

MAX_FILE_BYTES = 16 * 1024 * 1024  # a vocabulary file larger than this is refused
MAX_WORDS = 500_000
MAX_WORD_LENGTH = 64


@dataclass
class Vocabulary:
    """The words a decoder may spell, as a trie over label ids (`alphabet[i - 1]` is id i; the
    space, the word separator, is not part of any word).

    Node 0 is the root; `children[n]` maps a label id to the next node, `is_word[n]` says whether the
    path to n spells a whole word.
    """

    words: tuple[str, ...]
    alphabet: str
    children: list[dict[int, int]] = field(init=False, repr=False)  # built from `words`
    is_word: list[bool] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        ids = {c: i + 1 for i, c in enumerate(self.alphabet)}
        self.children, self.is_word = [{}], [False]
        self._set = frozenset(self.words)
        for word in self.words:
            node = 0
            for c in word:
                nxt = self.children[node].get(ids[c])
                if nxt is None:
                    nxt = len(self.children)
                    self.children[node][ids[c]] = nxt
                    self.children.append({})
                    self.is_word.append(False)
                node = nxt
            self.is_word[node] = True

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._set

    @property
    def space_id(self) -> int:
        """The label id of the word separator (0 when the alphabet has no space: one word only)."""
        return self.alphabet.index(" ") + 1 if " " in self.alphabet else 0

    @classmethod
    def from_words(cls, words: Iterable[str], alphabet: str, *, source: str = "vocabulary") -> Vocabulary:
        """The vocabulary of `words` (normalised, checked against `alphabet`, deduplicated, sorted)."""
        letters = set(alphabet) - {" "}
        found: set[str] = set()
        for n, raw in enumerate(words, start=1):
            word = "".join(c for c in unicodedata.normalize("NFKC", str(raw)).strip().lower()
                           if unicodedata.category(c) != "Cf")  # zero-width and byte-order marks
            if not word:
                continue
            if len(word) > MAX_WORD_LENGTH:
                raise InputError(f"{source}: word {n} is {len(word)} characters long (at most {MAX_WORD_LENGTH})")
            bad = next((c for c in word if c not in letters), None)
            if bad is not None:
                hint = " (spell numbers as words)" if bad.isdigit() else ""
                raise InputError(f"{source}: the word {word[:40]!r} has {bad!r}, which is not in the model's "
                                 f"alphabet {alphabet!r}{hint}")
            found.add(word)
            if len(found) > MAX_WORDS:
                raise InputError(f"{source}: more than {MAX_WORDS} words")
        if not found:
            raise InputError(f"{source}: no words (one or more words per line, '#' starts a comment line)")
        return cls(tuple(sorted(found)), alphabet)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], alphabet: str) -> Vocabulary:
        """The words of a UTF-8 text file (see the module docstring)."""
        from sensorium.runtime.text_io import read_text_file

        p = Path(path)
        text = read_text_file(p, "vocabulary", MAX_FILE_BYTES)
        words = (w for line in text.splitlines() if not line.lstrip().startswith("#") for w in line.split())
        return cls.from_words(words, alphabet, source=f"vocabulary {p}")


def words_of(transcripts: Iterable[str]) -> list[str]:
    """The sorted distinct words of normalised transcripts (what a model's default vocabulary holds)."""
    return sorted({w for t in transcripts for w in t.split()})


__all__ = ["MAX_FILE_BYTES", "Vocabulary", "words_of"]
