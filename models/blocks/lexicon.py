"""Human-rated sentiment lexicons (VADER, AFINN) as a layer inside a text model.

The lexicon knowledge travels inside the model: ``PieceValence`` holds non-trainable tables built
once, at model-building time, from the lexicon files and the model's own SentencePiece tokenizer, and
computes VADER-like sentence features from token ids in the graph. A saved ``.keras`` or an exported
``.tflite`` needs neither lexicon package nor any lookup at run time.

Lexicon words -> token ids
--------------------------
Every single-word lexicon entry is tokenised alone (``tokenizer.pieces(word)``, which gives the pieces
the word gets in running text: SentencePiece splits at whitespace first). An entry of at most ``span``
pieces is kept under its first piece (a ``▁``-word-start piece): a *candidate* is the sequence of
the word's remaining pieces followed by a word boundary. At position t of a text a candidate matches
when ``ids[t]`` is the first piece, ``ids[t+1..]`` are exactly the remaining pieces, and the piece
after them ends the word: it is not a letter/digit/apostrophe continuation piece (a ``▁`` piece, a
punctuation piece such as ``,``, a byte-fallback piece, padding). So "dull" (``▁d ull``) matches in
"so dull, really" but not in "dullness" (``▁d ull ness``), and "good" does not match "goodbye". At
most one candidate of a first piece can match (they differ before their boundary). Entries with more
than ``span`` pieces, or whose first piece does not start a word, are dropped; a first piece with more
than ``max_candidates`` words keeps the strongest (negators and boosters first, then by |valence|).

Per-entry features (``PIECE_FEATURES``)
---------------------------------------
- ``valence``: VADER's mean human rating / 4 and AFINN-en-165's score / 5, averaged where both rate
  the word; in [-1, 1].
- ``negator``: 1 for VADER's negation words (its NEGATE list, with ' and ’ spellings).
- ``booster``: VADER's degree adverbs (BOOSTER_DICT): +0.293 intensifiers, -0.293 dampeners.
- ``but``: 1 for "but" (VADER weighs what precedes it by 0.5 and what follows by 1.5).

The negation and booster lists are copied from vaderSentiment 3.3.2 (MIT licence, C.J. Hutto) so the
builder reads only data files and never imports VADER's analyser.

Sentence features (``SENTENCE_FEATURES``, all computed with TFLite builtin ops: gather, pad, strided
slice, pack, comparisons, select, cumsum, sums, sqrt, tanh, log)
---------------------------------------------------------------------------------------------------
A word's valence v at its first piece becomes ``v * (1 + b/2) * (1 - 1.74 n) * w`` where b sums the
booster values of the 2 previous pieces, n is 1 when a negator is among the 4 previous pieces (VADER:
3 previous words, ~1.3 pieces a word; -1.74 turns v into VADER's -0.74 v), and w is 1.5 after a "but",
0.5 before one, 1 otherwise. Padding (id 0) contributes nothing. With s = 4 * sum of the adjusted
valences (VADER's rating units):

    compound = s / sqrt(s^2 + 15)  (VADER's normalisation), balance = (P - N) / (P + N + 1e-3),
    tanh(P), tanh(N), log(1 + #positive words) / 2, log(1 + #negative words) / 2,
    log(1 + #negated sentiment words) / 2, (#positive + #negative words) / #real tokens

where P and N are the sums of the positive and of the negative adjusted valences (magnitudes).
"""
from __future__ import annotations

import importlib.util
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from sensorium.runtime.errors import DataError

log = logging.getLogger(__name__)

LEXICON_NAMES = ("vader+afinn",)  # what lexicon_entries reads (TextClassifierSpec.lexicon adds "none")
PIECE_FEATURES = ("valence", "negator", "booster", "but")
SENTENCE_FEATURES = ("compound", "balance", "positive_mass", "negative_mass", "positive_words",
                     "negative_words", "negated_words", "lexicon_density")

# vaderSentiment 3.3.2 (MIT), vaderSentiment.py: NEGATE and BOOSTER_DICT (its single-word entries).
B_INCR, B_DECR = 0.293, -0.293
NEGATE = (
    "aint", "arent", "cannot", "cant", "couldnt", "darent", "didnt", "doesnt", "ain't", "aren't", "can't",
    "couldn't", "daren't", "didn't", "doesn't", "dont", "hadnt", "hasnt", "havent", "isnt", "mightnt", "mustnt",
    "neither", "don't", "hadn't", "hasn't", "haven't", "isn't", "mightn't", "mustn't", "neednt", "needn't",
    "never", "none", "nope", "nor", "not", "nothing", "nowhere", "oughtnt", "shant", "shouldnt", "uhuh",
    "wasnt", "werent", "oughtn't", "shan't", "shouldn't", "uh-uh", "wasn't", "weren't", "without", "wont",
    "wouldnt", "won't", "wouldn't", "rarely", "seldom", "despite",
)
BOOSTERS_UP = (
    "absolutely", "amazingly", "awfully", "completely", "considerable", "considerably", "decidedly", "deeply",
    "effing", "enormous", "enormously", "entirely", "especially", "exceptional", "exceptionally", "extreme",
    "extremely", "fabulously", "flipping", "flippin", "frackin", "fracking", "fricking", "frickin", "frigging",
    "friggin", "fully", "fuckin", "fucking", "fuggin", "fugging", "greatly", "hella", "highly", "hugely",
    "incredible", "incredibly", "intensely", "major", "majorly", "more", "most", "particularly", "purely",
    "quite", "really", "remarkably", "so", "substantially", "thoroughly", "total", "totally", "tremendous",
    "tremendously", "uber", "unbelievably", "unusually", "utter", "utterly", "very",
)
BOOSTERS_DOWN = (
    "almost", "barely", "hardly", "kinda", "kindof", "kind-of", "less", "little", "marginal", "marginally",
    "occasional", "occasionally", "partly", "scarce", "scarcely", "slight", "slightly", "somewhat", "sorta",
    "sortof", "sort-of",
)
BUT_WORDS = ("but",)

NO_MATCH, BOUNDARY, ANY = -4, -1, -2  # candidate codes (piece ids are >= 0)
NOT_BOUNDARY = -3  # what a continuation piece's boundary code is (never equals a candidate code)
NEGATION_WINDOW = 4  # pieces before a word searched for a negator
BOOSTER_WINDOW = 2  # pieces before a word whose booster values add up
NEGATION_SCALAR = -0.74  # VADER's N_SCALAR
COMPOUND_ALPHA = 15.0  # VADER's normalisation constant


# --- reading the lexicons (no TensorFlow, no VADER import) ---------------------------------------------

def package_file(package: str, relative: str, install: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"the {package} package is not installed (pip install {install}); the sentiment "
                        "lexicon layer reads its lexicon file")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise DataError(f"{path}: lexicon file missing from the {package} package (reinstall {install})")
    return path


def _lexicon_lines(path: Path) -> list[tuple[int, list[str]]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such lexicon file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable lexicon file ({type(exc).__name__})") from None
    rows = [(n, line.rstrip("\r").split("\t")) for n, line in enumerate(text.split("\n"), 1) if line.strip()]
    if not rows:
        raise DataError(f"{path}: empty lexicon file")
    return rows


def _rating(path: Path, lineno: int, value: str, low: float, high: float) -> float:
    try:
        rating = float(value)
    except ValueError:
        rating = math.nan
    if not low <= rating <= high:
        raise DataError(f"{path}:{lineno}: not a lexicon line (WORD<TAB>RATING, rating in [{low:g}, {high:g}]): "
                        f"rating {value[:30]!r}")
    return rating


def read_vader_lexicon(path: str | Path | None = None) -> dict[str, float]:
    """VADER's `vader_lexicon.txt` (WORD<TAB>MEAN<TAB>SD<TAB>RATINGS) -> {lower-cased word: mean in [-4, 4]}."""
    path = Path(path) if path else package_file("vaderSentiment", "vader_lexicon.txt", "vaderSentiment==3.3.2")
    out: dict[str, list[float]] = {}
    for lineno, parts in _lexicon_lines(path):
        if len(parts) < 2 or not parts[0]:
            raise DataError(f"{path}:{lineno}: not a lexicon line (WORD<TAB>MEAN<TAB>SD<TAB>RATINGS)")
        out.setdefault(parts[0].lower(), []).append(_rating(path, lineno, parts[1], -4, 4))
    return {w: float(np.mean(v)) for w, v in out.items()}


def read_afinn_lexicon(path: str | Path | None = None) -> dict[str, float]:
    """AFINN-en-165 (WORD<TAB>SCORE, the word may hold spaces) -> {lower-cased word: score in [-5, 5]}."""
    path = Path(path) if path else package_file("afinn", "data/AFINN-en-165.txt", "afinn")
    out: dict[str, list[float]] = {}
    for lineno, parts in _lexicon_lines(path):
        if len(parts) != 2 or not parts[0]:
            raise DataError(f"{path}:{lineno}: not a lexicon line (WORD<TAB>SCORE)")
        out.setdefault(parts[0].lower(), []).append(_rating(path, lineno, parts[1], -5, 5))
    return {w: float(np.mean(v)) for w, v in out.items()}


def lexicon_entries(name: str = "vader+afinn", *, vader: Mapping[str, float] | None = None,
                    afinn: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """{word: (len(PIECE_FEATURES),) float32} of the named lexicon; `vader`/`afinn` replace the packaged
    files (tests). Multi-word entries ("kind of") are left out: the layer matches single words."""
    if name not in LEXICON_NAMES:
        raise ValueError(f"lexicon must be one of {', '.join(LEXICON_NAMES)}, got {name!r}")
    vader = read_vader_lexicon() if vader is None else vader
    afinn = read_afinn_lexicon() if afinn is None else afinn
    entries: dict[str, np.ndarray] = {}

    def row(word: str) -> np.ndarray:
        return entries.setdefault(word, np.zeros(len(PIECE_FEATURES), np.float32))

    for word in set(vader) | set(afinn):
        if " " in word:
            continue
        scores = [vader[word] / 4.0] if word in vader else []
        scores += [afinn[word] / 5.0] if word in afinn else []
        row(word)[0] = float(np.mean(scores))
    for word in NEGATE:
        for spelling in {word, word.replace("'", "\u2019")}:
            row(spelling)[1] = 1.0
    for words, value in ((BOOSTERS_UP, B_INCR), (BOOSTERS_DOWN, B_DECR)):
        for word in words:
            row(word)[2] = value
    for word in BUT_WORDS:
        row(word)[3] = 1.0
    return {w: r for w, r in entries.items() if np.any(r != 0)}


# --- lexicon -> the tokenizer's pieces ---------------------------------------------------------------

@dataclass
class LexiconTables:
    """The tables of a PieceValence layer (V pieces, G first-piece groups, M candidates, K span)."""

    piece_group: np.ndarray  # (V,) int32: the candidate group of a word's first piece (0 = none)
    boundary: np.ndarray  # (V,) int32: BOUNDARY where the piece ends a word, NOT_BOUNDARY where it continues it
    candidates: np.ndarray  # (G, M, K) int32: the pieces after the first, BOUNDARY, then ANY; NO_MATCH rows
    features: np.ndarray  # (G, M, F) float32: PIECE_FEATURES of each candidate
    stats: dict[str, int] = field(default_factory=dict)  # entries, mapped, single_piece, too_long, ...


def _continues_word(piece: str) -> bool:
    """A piece that extends the word before it: no ▁, starting with a letter, digit or apostrophe."""
    if not piece or piece.startswith("\u2581") or (piece.startswith("<") and piece.endswith(">")):
        return False
    return piece[0].isalnum() or piece[0] in "'\u2019"


def build_lexicon_tables(tokenizer: Any, entries: Mapping[str, np.ndarray], *, span: int = 4,
                         max_candidates: int = 64) -> LexiconTables:
    """Map `entries` ({word: features}) onto `tokenizer`'s pieces (a SubwordTokenizer or anything with
    vocab_size, id_to_piece, pieces, piece_to_id); see the module docstring for the rules."""
    if span < 1 or max_candidates < 1:
        raise ValueError("span and max_candidates must be >= 1")
    vocab = int(tokenizer.vocab_size)
    pieces = [tokenizer.id_to_piece(i) for i in range(vocab)]
    boundary = np.asarray([NOT_BOUNDARY if _continues_word(p) else BOUNDARY for p in pieces], np.int32)  # (V,)
    from sensorium.runtime.tokenizer import EOS_ID

    boundary[: EOS_ID + 1] = BOUNDARY  # padding, unknown, BOS, EOS
    groups: dict[int, list[tuple[list[int], np.ndarray, str]]] = {}
    stats = {"entries": len(entries), "too_long": 0, "not_word_start": 0, "unmatchable": 0, "over_cap": 0}
    for word in sorted(entries):
        word_pieces = tokenizer.pieces(word)
        ids = [tokenizer.piece_to_id(p) for p in word_pieces]
        if not ids or len(ids) > span:
            stats["too_long"] += 1
            continue
        if not word_pieces[0].startswith("\u2581") or ids[0] <= EOS_ID:
            stats["not_word_start"] += 1
            continue
        if any(i <= EOS_ID for i in ids[1:]) or any(p.startswith("<0x") for p in word_pieces):
            stats["unmatchable"] += 1  # unknown or byte-fallback pieces: the word never reads the same way
            continue
        groups.setdefault(ids[0], []).append((ids[1:], entries[word], word))
    width = max([len(c) for c in groups.values()] + [1])
    m = min(max_candidates, width)
    g = len(groups) + 1  # row 0: no candidates
    piece_group = np.zeros(vocab, np.int32)
    candidates = np.full((g, m, span), NO_MATCH, np.int32)
    features = np.zeros((g, m, len(PIECE_FEATURES)), np.float32)
    mapped = single = 0
    for row, (first, cands) in enumerate(sorted(groups.items()), 1):
        piece_group[first] = row
        if len(cands) > m:  # negators, boosters and "but" first, then the strongest valences
            cands = sorted(cands, key=lambda c: (-float(np.any(c[1][1:] != 0)), -abs(float(c[1][0]))))
            stats["over_cap"] += len(cands) - m
            cands = cands[:m]
        for j, (rest, feats, _word) in enumerate(cands):
            code = [*rest, BOUNDARY] + [ANY] * (span - 1 - len(rest))
            candidates[row, j] = code[:span]
            features[row, j] = feats
            mapped += 1
            single += not rest
    stats.update(mapped=mapped, single_piece=single, groups=g - 1, max_candidates=m)
    log.info("lexicon: %d of %d entries mapped onto %d first pieces (%d single pieces; %d longer than %d "
             "pieces, %d over the %d-candidate cap)", mapped, len(entries), g - 1, single, stats["too_long"], span,
             stats["over_cap"], m)
    return LexiconTables(piece_group, boundary, candidates, features, stats)


def tables_for(tokenizer: Any, lexicon: str, **kwargs: Any) -> LexiconTables:
    """The named lexicon's tables on `tokenizer`'s pieces."""
    return build_lexicon_tables(tokenizer, lexicon_entries(lexicon), **kwargs)


# --- the layers ----------------------------------------------------------------------------------------

# Slices are ops.slice with explicit sizes (TFLite SLICE): some strided-slice forms of `x[:, a:b]` on
# dynamic shapes do not legalise to TFLite builtins.

def _shift_right(x, k: int):
    """(B, L) -> (B, L) with x[:, t - k] at t (zeros for t < k)."""
    shape = ops.shape(x)
    padded = ops.pad(x, ((0, 0), (k, 0)))  # (B, L + k)
    return ops.slice(padded, (0, 0), (shape[0], shape[1]))  # (B, L)


@keras.saving.register_keras_serializable(package="sensorium")
class PieceValence(keras.layers.Layer):
    """Token ids (B, L) int -> lexicon sentence features (B, len(SENTENCE_FEATURES)) float.

    The tables (LexiconTables) are non-trainable weights, so a saved model carries them and loading
    needs no lexicon; the config only records their shapes. Pass `tables` when building a new model;
    a layer made from a config starts with empty tables that the saved weights fill. Id 0 is padding.
    """

    def __init__(self, vocab_size: int, groups: int, max_candidates: int, span: int = 4,
                 tables: LexiconTables | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size, self.groups = int(vocab_size), int(groups)
        self.max_candidates, self.span = int(max_candidates), int(span)
        if min(self.vocab_size, self.groups, self.max_candidates, self.span) < 1:
            raise ValueError("vocab_size, groups, max_candidates and span must be >= 1")
        if tables is not None and (tables.piece_group.shape != (self.vocab_size,)
                                   or tables.candidates.shape != (self.groups, self.max_candidates, self.span)):
            raise ValueError(f"lexicon tables of shapes {tables.piece_group.shape}, {tables.candidates.shape} do not "
                             f"fit vocab_size {vocab_size}, groups {groups}, max_candidates {max_candidates}, "
                             f"span {span}")
        self._tables = tables

    @classmethod
    def from_tables(cls, tables: LexiconTables, **kwargs: Any) -> PieceValence:
        g, m, k = tables.candidates.shape
        return cls(len(tables.piece_group), g, m, k, tables=tables, **kwargs)

    def build(self, input_shape: tuple) -> None:
        if len(input_shape) != 2:
            raise ValueError(f"PieceValence expects ids (B, L), got shape {input_shape}")
        v, g, m, k, f = self.vocab_size, self.groups, self.max_candidates, self.span, len(PIECE_FEATURES)

        def table(name: str, shape: tuple, dtype: str):
            return self.add_weight(name=name, shape=shape, dtype=dtype, initializer="zeros", trainable=False)

        self.piece_group = table("piece_group", (v,), "int32")  # (V,)
        self.boundary = table("boundary", (v,), "int32")  # (V,)
        self.candidates = table("candidates", (g, m, k), "int32")  # (G, M, K)
        self.piece_features = table("piece_features", (g, m, f), "float32")  # (G, M, F)
        if self._tables is not None:
            t = self._tables
            self.piece_group.assign(t.piece_group)
            self.boundary.assign(t.boundary)
            self.candidates.assign(t.candidates)
            self.piece_features.assign(t.features)
            self._tables = None

    def word_features(self, ids):
        """ids (B, L) -> (B, L, F) PIECE_FEATURES of the lexicon word starting at each position (zeros
        where none does)."""
        if not self.built:
            self.build(tuple(ids.shape))
        ids = ops.cast(ids, "int32")  # (B, L)
        batch, length = ops.shape(ids)[0], ops.shape(ids)[1]
        k = self.span
        ahead = ops.pad(ids, ((0, 0), (0, k)))  # (B, L + K), padding after the text
        nxt = ops.stack([ops.slice(ahead, (0, i), (batch, length)) for i in range(1, k + 1)],
                        axis=-1)  # (B, L, K) ids[t+1..t+K]
        bnd = ops.take(self.boundary, nxt, axis=0)  # (B, L, K) BOUNDARY | NOT_BOUNDARY
        cand = ops.take(self.candidates, ops.take(self.piece_group, ids, axis=0), axis=0)  # (B, L, M, K)
        nxt, bnd = ops.expand_dims(nxt, 2), ops.expand_dims(bnd, 2)  # (B, L, 1, K)
        hit = ops.logical_or(ops.logical_or(ops.equal(cand, nxt), ops.equal(cand, bnd)),
                             ops.equal(cand, ANY))  # (B, L, M, K)
        match = ops.min(ops.cast(hit, "float32"), axis=-1)  # (B, L, M) 1 where every slot agrees
        feats = ops.take(self.piece_features, ops.take(self.piece_group, ids, axis=0), axis=0)  # (B, L, M, F)
        return ops.sum(ops.expand_dims(match, -1) * feats, axis=2)  # (B, L, F); at most one candidate matches

    def call(self, ids):
        real = ops.cast(ops.not_equal(ids, ops.cast(0, ids.dtype)), "float32")  # (B, L)
        f = self.word_features(ids) * ops.expand_dims(real, -1)  # (B, L, F)
        valence, negator, booster, but = ops.unstack(f, num=len(PIECE_FEATURES), axis=-1)  # each (B, L)
        negated = ops.max(ops.stack([_shift_right(negator, i) for i in range(1, NEGATION_WINDOW + 1)],
                                    axis=-1), axis=-1)  # (B, L) 1 where a negator precedes within the window
        boost = sum(_shift_right(booster, i) for i in range(1, BOOSTER_WINDOW + 1))  # (B, L)
        seen_but = ops.cumsum(but, axis=1)  # (B, L) "but"s up to and including t
        any_but = ops.cast(ops.greater(ops.sum(but, axis=1, keepdims=True), 0.0), "float32")  # (B, 1)
        after_but = ops.cast(ops.greater(seen_but - but, 0.0), "float32")  # (B, L)
        weight = after_but * 1.5 + (1.0 - after_but) * (1.0 - 0.5 * any_but)  # (B, L)
        v = valence * (1.0 + 0.5 * boost) * (1.0 + (NEGATION_SCALAR - 1.0) * negated) * weight  # (B, L)
        pos = ops.relu(v)  # (B, L)
        neg = ops.relu(-v)  # (B, L)
        pos_mass, neg_mass = ops.sum(pos, axis=1), ops.sum(neg, axis=1)  # (B,)
        s = 4.0 * (pos_mass - neg_mass)  # (B,) VADER rating units
        compound = s / ops.sqrt(s * s + COMPOUND_ALPHA)  # (B,)
        balance = (pos_mass - neg_mass) / (pos_mass + neg_mass + 1e-3)  # (B,)
        n_pos = ops.sum(ops.cast(ops.greater(v, 0.0), "float32"), axis=1)  # (B,)
        n_neg = ops.sum(ops.cast(ops.less(v, 0.0), "float32"), axis=1)  # (B,)
        n_negated = ops.sum(negated * ops.cast(ops.not_equal(valence, 0.0), "float32"), axis=1)  # (B,)
        n_real = ops.maximum(ops.sum(real, axis=1), 1.0)  # (B,)
        out = ops.stack([compound, balance, ops.tanh(pos_mass), ops.tanh(neg_mass), 0.5 * ops.log(1.0 + n_pos),
                         0.5 * ops.log(1.0 + n_neg), 0.5 * ops.log(1.0 + n_negated), (n_pos + n_neg) / n_real],
                        axis=-1)  # (B, S)
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return (input_shape[0], len(SENTENCE_FEATURES))

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(vocab_size=self.vocab_size, groups=self.groups, max_candidates=self.max_candidates,
                      span=self.span)
        return config


@keras.saving.register_keras_serializable(package="sensorium")
class BranchDropout(keras.layers.Layer):
    """(B, D) -> (B, D): while training, zero the whole vector of a `rate` fraction of the examples (so
    what it is concatenated with must carry those examples alone); identity at inference. The kept
    vectors are not rescaled, so inference sees exactly what the kept training examples saw."""

    def __init__(self, rate: float, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= float(rate) < 1.0:
            raise ValueError(f"rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training: bool | None = None):
        if not training or self.rate == 0.0:
            return x
        keep = keras.random.uniform((ops.shape(x)[0], 1), seed=self.seed_generator) >= self.rate  # (B, 1)
        return x * ops.cast(keep, x.dtype)  # (B, D)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config
