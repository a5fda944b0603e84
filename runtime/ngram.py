"""Word n-gram language models for CTC decoding (pure Python, no TensorFlow, no numpy).

A `WordNgramLM` scores word sequences: `log_prob(history, word)` is the natural log of
P(word | the last order-1 words), with `<s>` before the first word and `</s>` after the last. The
speech decoder (`sensorium.runtime.ctc.lexicon_beam_decode`) adds it, weighted, each time a word
is spelled: a recogniser that half-hears a digit string on an unfamiliar voice then prefers word
sequences the task actually says ("turn on the light", not "turn on the lock").

Sources:
- `WordNgramLM.train(sentences, order=3)`: interpolated modified-free Kneser-Ney (one discount per
  order, D = n1 / (n1 + 2 n2)), stored in backoff form, exactly as ARPA files hold it; what a speech
  run records from its training transcripts (`to_dict`, kept in the model's metadata);
- an ARPA file (`WordNgramLM.from_arpa`), the format KenLM, SRILM and most toolkits write (log10
  probabilities and backoffs);
- a plain text file of sentences, one per line (`WordNgramLM.from_file` trains on it).

Words outside the model get P(<unk>) (the unigram floor). Every problem with a file or a stored
model (missing, not UTF-8, too large, malformed lines, counts that disagree) is one `InputError`.
"""
from __future__ import annotations

import math
import os
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sensorium.runtime.errors import InputError

BOS, EOS, UNK = "<s>", "</s>", "<unk>"
MAX_ORDER = 5
MAX_FILE_BYTES = 64 * 1024 * 1024  # a language model or sentence file larger than this is refused
MAX_NGRAMS = 2_000_000  # stored n-grams, all orders together
MAX_SENTENCE_WORDS = 200
LN10 = math.log(10.0)


def _normalise(word: str) -> str:
    """NFKC, lower case, invisible format characters removed (as `runtime.vocabulary` does)."""
    return "".join(c for c in unicodedata.normalize("NFKC", word).strip().lower() if unicodedata.category(c) != "Cf")


@dataclass
class WordNgramLM:
    """A backoff word n-gram model: `probs[k]` maps k-word tuples to ln P(last | first k-1), and
    `backoffs` maps contexts (tuples of 1..order-1 words) to their ln backoff weight (0 if absent).
    Unigrams always hold `<unk>` and `</s>`; `<s>` is a context only."""

    order: int
    probs: list[dict[tuple[str, ...], float]]  # index k-1: the k-grams
    backoffs: dict[tuple[str, ...], float]
    source: str = "language model"
    _cache: dict[tuple[tuple[str, ...], str], float] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 1 <= self.order <= MAX_ORDER or len(self.probs) != self.order:
            raise InputError(f"{self.source}: order must be 1 to {MAX_ORDER}, with that many n-gram tables")
        if UNK not in {g[0] for g in self.probs[0]} or (EOS,) not in self.probs[0]:
            raise InputError(f"{self.source}: the unigrams must hold {UNK} and {EOS}")

    # --- scoring ------------------------------------------------------------------------------
    @property
    def words(self) -> list[str]:
        """The model's words (no markers), sorted."""
        return sorted(g[0] for g in self.probs[0] if g[0] not in (BOS, EOS, UNK))

    def __len__(self) -> int:
        return sum(len(p) for p in self.probs)

    def log_prob(self, history: tuple[str, ...], word: str) -> float:
        """ln P(word | history): the longest stored n-gram ending in `word`, plus the backoff
        weights of the contexts skipped on the way down. `history` may be longer than needed."""
        history = history[len(history) - self.order + 1:] if self.order > 1 else ()
        key = (history, word)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if (word,) not in self.probs[0]:
            word = UNK
        backoff = 0.0
        for start in range(len(history) + 1):
            context = history[start:]
            gram = context + (word,)
            p = self.probs[len(gram) - 1].get(gram)
            if p is not None:
                value = backoff + p
                break
            backoff += self.backoffs.get(context, 0.0)
        else:  # unreachable: every word falls back to a unigram, <unk> at worst
            value = backoff + self.probs[0][(UNK,)]
        if len(self._cache) < 200_000:
            self._cache[key] = value
        return value

    def state(self, history: tuple[str, ...], word: str) -> tuple[str, ...]:
        """The history after `word` (the last order-1 words)."""
        return (history + (word,))[-(self.order - 1):] if self.order > 1 else ()

    def sentence_log_prob(self, words: Iterable[str]) -> float:
        """ln P(<s> words </s>)."""
        history: tuple[str, ...] = (BOS,)
        total = 0.0
        for w in list(words) + [EOS]:
            total += self.log_prob(history, w)
            history = self.state(history, w)
        return total

    # --- building -----------------------------------------------------------------------------
    @classmethod
    def train(cls, sentences: Iterable[str | list[str]], order: int = 3, *,
              source: str = "language model") -> WordNgramLM:
        """Interpolated Kneser-Ney on `sentences` (strings split on whitespace, or word lists),
        converted to backoff form. Sentences longer than MAX_SENTENCE_WORDS are cut."""
        if not 1 <= int(order) <= MAX_ORDER:
            raise InputError(f"{source}: order must be 1 to {MAX_ORDER}, got {order}")
        order = int(order)
        counts: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order)]  # raw counts of k-grams
        n_sentences = 0
        for s in sentences:
            words = [_normalise(w) for w in (s.split() if isinstance(s, str) else s)]
            words = [w for w in words if w and w not in (BOS, EOS, UNK)][:MAX_SENTENCE_WORDS]
            if not words:
                continue
            n_sentences += 1
            padded = [BOS] + words + [EOS]
            for k in range(1, order + 1):
                for i in range(len(padded) - k + 1):
                    gram = tuple(padded[i : i + k])
                    if gram != (BOS,):
                        counts[k - 1][gram] += 1
            if sum(len(c) for c in counts) > MAX_NGRAMS:
                raise InputError(f"{source}: more than {MAX_NGRAMS:,} distinct n-grams; use a smaller text or order")
        if not n_sentences:
            raise InputError(f"{source}: no sentences to learn from (one sentence per line)")
        # Kneser-Ney counts: the highest order and n-grams starting with <s> keep their raw counts;
        # the others count the distinct words seen before them.
        kn: list[Counter[tuple[str, ...]]] = [Counter() for _ in range(order)]
        kn[order - 1] = counts[order - 1]
        for k in range(order - 1, 0, -1):
            for gram in counts[k]:  # (k+1)-grams
                kn[k - 1][gram[1:]] += 1
            for gram, c in counts[k - 1].items():
                if gram[0] == BOS:
                    kn[k - 1][gram] = c
        discounts = [_discount(kn[k]) for k in range(order)]
        vocab = sorted({g[0] for g in counts[0]} | {UNK})
        probs: list[dict[tuple[str, ...], float]] = [{} for _ in range(order)]
        backoffs: dict[tuple[str, ...], float] = {}
        # unigrams: discounted continuation counts, interpolated with a uniform distribution
        d = discounts[0]
        total = sum(kn[0].values())
        gamma = d * len(kn[0]) / total
        uniform = 1.0 / len(vocab)
        for w in vocab:
            probs[0][(w,)] = math.log(max(kn[0].get((w,), 0) - d, 0.0) / total + gamma * uniform)
        if order > 1:  # <s> is a context, never predicted: ARPA's -99 keeps its backoff
            probs[0][(BOS,)] = -99.0 * LN10
        for k in range(2, order + 1):  # k-grams, interpolated with the (k-1)-gram estimate
            d = discounts[k - 1]
            by_context: dict[tuple[str, ...], list[tuple[str, int]]] = defaultdict(list)
            for gram, c in kn[k - 1].items():
                by_context[gram[:-1]].append((gram[-1], c))
            for context, followers in by_context.items():
                ctotal = sum(c for _, c in followers)
                cgamma = d * len(followers) / ctotal
                backoffs[context] = math.log(cgamma)
                for w, c in followers:
                    lower = _interpolated(probs, backoffs, context[1:], w)
                    probs[k - 1][context + (w,)] = math.log((c - d) / ctotal + cgamma * math.exp(lower))
        return cls(order, probs, backoffs, source=source)

    @classmethod
    def from_arpa(cls, text: str, *, source: str = "language model") -> WordNgramLM:
        """Parse ARPA text (`\\data\\`, `ngram K=N` lines, `\\K-grams:` sections, `\\end\\`)."""
        lines = iter(text.splitlines())
        expected: dict[int, int] = {}
        for line in lines:
            if line.strip() == "\\data\\":
                break
        else:
            raise InputError(f"{source}: not an ARPA language model (no \\data\\ line)")
        probs: list[dict[tuple[str, ...], float]] = []
        backoffs: dict[tuple[str, ...], float] = {}
        section = 0
        for number, line in enumerate(lines, start=2):
            line = line.strip()
            if not line:
                continue
            if line.startswith("ngram "):
                try:
                    k, n = line[6:].split("=")
                    expected[int(k)] = int(n)
                except ValueError:
                    raise InputError(f"{source}: malformed header line {line[:60]!r}") from None
                continue
            if line == "\\end\\":
                break
            if line.startswith("\\") and line.endswith("-grams:"):
                try:
                    section = int(line[1:-7])
                except ValueError:
                    raise InputError(f"{source}: malformed section line {line[:60]!r}") from None
                if section != len(probs) + 1 or section > MAX_ORDER:
                    raise InputError(f"{source}: section {line!r} out of order (orders 1 to {MAX_ORDER}, ascending)")
                probs.append({})
                continue
            if not section:
                raise InputError(f"{source}: line {number} comes before any \\1-grams: section")
            parts = line.split()
            if len(parts) not in (section + 1, section + 2):
                raise InputError(f"{source}: line {number} of the {section}-grams has {len(parts)} fields")
            try:
                p = float(parts[0]) * LN10
                bo = float(parts[section + 1]) * LN10 if len(parts) == section + 2 else None
            except ValueError:
                raise InputError(f"{source}: line {number} has a probability that is not a number") from None
            if not math.isfinite(p) and parts[0] not in ("-99", "-inf"):
                raise InputError(f"{source}: line {number} has a probability that is not finite")
            gram = tuple(parts[1 : section + 1])
            probs[-1][gram] = max(p, -99.0 * LN10)
            if bo is not None and bo != 0.0:
                if not math.isfinite(bo):
                    raise InputError(f"{source}: line {number} has a backoff that is not finite")
                backoffs[gram] = bo
            if sum(len(t) for t in probs) > MAX_NGRAMS:
                raise InputError(f"{source}: more than {MAX_NGRAMS:,} n-grams")
        else:
            raise InputError(f"{source}: the ARPA file has no \\end\\ line (truncated?)")
        if not probs:
            raise InputError(f"{source}: no n-grams")
        for k, n in expected.items():
            if k > len(probs) or len(probs[k - 1]) != n:
                found = len(probs[k - 1]) if k <= len(probs) else 0
                raise InputError(f"{source}: the header says {n} {k}-grams, the file has {found}")
        unigrams = probs[0]
        if (UNK,) not in unigrams:  # toolkits may leave <unk> out: give it the floor
            unigrams[(UNK,)] = min((p for g, p in unigrams.items() if g != (BOS,)), default=-99.0 * LN10)
        if (EOS,) not in unigrams:
            raise InputError(f"{source}: the 1-grams lack {EOS}")
        return cls(len(probs), probs, backoffs, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], order: int = 3) -> WordNgramLM:
        """An ARPA file (it starts with `\\data\\`, after blank or comment lines), or a UTF-8 text
        file of sentences, one per line (lines starting with "#" skipped), trained at `order`."""
        from sensorium.runtime.text_io import read_text_file

        p = Path(path)
        text = read_text_file(p, "language model", MAX_FILE_BYTES)
        source = f"language model {p}"
        if "\\data\\" in text[:4096]:
            return cls.from_arpa(text, source=source)
        sentences = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        return cls.train(sentences, order=order, source=source)

    # --- storing ------------------------------------------------------------------------------
    def to_arpa(self) -> str:
        """The model as ARPA text (log10 values, 6 decimals)."""
        out = ["\\data\\"] + [f"ngram {k + 1}={len(t)}" for k, t in enumerate(self.probs)]
        for k, table in enumerate(self.probs):
            out += ["", f"\\{k + 1}-grams:"]
            for gram in sorted(table):
                line = f"{table[gram] / LN10:.6f}\t{' '.join(gram)}"
                if k + 1 < self.order and gram in self.backoffs:
                    line += f"\t{self.backoffs[gram] / LN10:.6f}"
                out.append(line)
        out += ["", "\\end\\", ""]
        return "\n".join(out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form for a model's metadata: {"format": "arpa", "order", "arpa"}."""
        return {"format": "arpa", "order": self.order, "arpa": self.to_arpa()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "the model's language model") -> WordNgramLM:
        if not isinstance(data, Mapping) or data.get("format") != "arpa" or not isinstance(data.get("arpa"), str):
            raise InputError(f"{source}: expected {{'format': 'arpa', 'arpa': TEXT}}")
        if len(data["arpa"]) > MAX_FILE_BYTES:
            raise InputError(f"{source}: larger than {MAX_FILE_BYTES // 2**20} MiB")
        return cls.from_arpa(data["arpa"], source=source)


def _discount(counts: Counter[tuple[str, ...]]) -> float:
    """Ney's absolute discount n1 / (n1 + 2 n2), kept within [0.1, 0.9] (0.5 without singletons)."""
    n1 = sum(1 for c in counts.values() if c == 1)
    n2 = sum(1 for c in counts.values() if c == 2)
    if n1 == 0:
        return 0.5
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2)))


def _interpolated(probs: list[dict[tuple[str, ...], float]], backoffs: dict[tuple[str, ...], float],
                  context: tuple[str, ...], word: str) -> float:
    """ln P(word | context) from the orders already built (backoff form, as `log_prob`)."""
    backoff = 0.0
    for start in range(len(context) + 1):
        gram = context[start:] + (word,)
        p = probs[len(gram) - 1].get(gram)
        if p is not None:
            return backoff + p
        backoff += backoffs.get(context[start:], 0.0)
    return backoff + probs[0][(UNK,)]


__all__ = ["BOS", "EOS", "UNK", "WordNgramLM"]
