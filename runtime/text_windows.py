"""Long texts read sentence by sentence (numpy and `re` only): classifiers pool their sentences'
probabilities, translators join their sentences' translations.

A text classifier trained on short texts (tweets) reads a long one (a review, an e-mail) badly: cut to
its window it loses the rest, and even inside the window a length it never saw in training pulls its
decision (the bundled tweet model calls long texts negative, as its long training tweets mostly are).
So a text whose subword pieces outnumber the model's training texts (`long_text_pieces`, the 99th
percentile recorded at training, at most the window) is split into its sentences, each sentence is
classified on its own, and the text's probabilities are the normalised geometric mean of its
sentences' (the mean of their log-probabilities): for the binary head that is the mean of the
sentences' positive-vs-negative log-odds. Shorter texts, and texts of one sentence, are read whole as before.

Sentences end at ".", "!", "?" or "…" followed by white space, at a line break, or at an HTML `<br>`
tag (scraped reviews carry them). The patterns match in linear time, so hostile input cannot make them
backtrack; a text of more than `MAX_PARTS` sentences is read as `MAX_PARTS` runs of consecutive
sentences, so a huge text costs at most that many classifier rows.

A translator translates a source of several sentences a sentence at a time (as it was trained: on UI
strings, mostly one sentence each) and joins the translations with the separators the source had
(`split_sentences`, `join`); so no source is cut at the window unless one sentence outruns it.
"""
from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Sequence

import numpy as np

MAX_PARTS = 128  # classifier rows per text at most
_BOUNDARY = re.compile(r"(?<=[.!?\u2026])\s+|[\r\n]+|<br\s*/?>", re.IGNORECASE)


def _inside(spans: Sequence[tuple[int, int]], start: int, end: int) -> bool:
    """Whether [start, end) cuts into one of the sorted, disjoint `spans` without covering it whole."""
    i = bisect.bisect_right(spans, (start, float("inf"))) - 1  # the last span starting at or before `start`
    for a, b in spans[max(i, 0):i + 2]:
        if a < end and start < b and not (start <= a and b <= end):
            return True
    return False


def segments(text: str, keep: Sequence[tuple[int, int]] = ()) -> tuple[list[str], list[str]]:
    """(the text's sentences, stripped; the separators around them, one more than the sentences):
    separator 0, sentence 0, separator 1, ..., sentence k-1, separator k spell the text again. A
    separator is everything between two sentences (boundaries, tags and white space) as written, the
    first what comes before the first sentence, the last what follows the last; a text without a
    sentence (empty, or nothing but boundaries) is one part, itself: ([text], ["", ""]). No boundary
    cuts into a span of `keep` (sorted, disjoint (start, end) pairs: a tag, a placeholder)."""
    parts: list[str] = []
    seps: list[str] = []
    pending: list[str] = []  # what lies between the last sentence and the next

    def add(chunk: str) -> None:
        core = chunk.strip()
        if not core:
            pending.append(chunk)
            return
        start = chunk.index(core)
        seps.append("".join(pending) + chunk[:start])
        parts.append(core)
        pending[:] = [chunk[start + len(core):]]

    pos = 0
    for match in _BOUNDARY.finditer(text):
        if keep and _inside(keep, *match.span()):
            continue
        add(text[pos:match.start()])
        pending.append(match.group(0))
        pos = match.end()
    add(text[pos:])
    if not parts:
        return [text], ["", ""]
    return parts, seps + ["".join(pending)]


def sentences(text: str, max_parts: int = MAX_PARTS) -> list[str]:
    """The text's sentences, stripped; at most `max_parts` of them (consecutive sentences joined into
    that many runs of near-equal count when there are more). A text of one sentence is itself."""
    parts, _ = segments(text)
    if len(parts) < 2:
        return [text]
    if len(parts) > max_parts:
        bounds = np.linspace(0, len(parts), max_parts + 1).round().astype(int)
        parts = [" ".join(parts[a:b]) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
    return parts


def plan(texts: Sequence[str], lengths: Sequence[int], limit: int,
         max_parts: int = MAX_PARTS) -> tuple[list[str], np.ndarray]:
    """(what the classifier reads, owner (M,) int: the text each row belongs to). A text of more than
    `limit` pieces (`lengths`) and more than one sentence contributes its sentences, any other text
    itself."""
    rows: list[str] = []
    owner: list[int] = []
    for i, (text, n) in enumerate(zip(texts, lengths)):
        parts = sentences(text, max_parts) if n > limit else [text]
        rows.extend(parts)
        owner.extend([i] * len(parts))
    return rows, np.asarray(owner, np.int64)


def split_sentences(texts: Sequence[str], max_parts: int = MAX_PARTS,
                    keep: Callable[[str], Sequence[tuple[int, int]]] | None = None,
                    ) -> tuple[list[str], list[list[str]]]:
    """For a model that writes text (a translator): (what it reads, the separators of each text). A text
    of several sentences is read a sentence at a time, its first `max_parts` - 1 sentences alone and
    the rest as one part (cut by the model's window, as a whole text is), with its separators (see
    `segments`; `keep(text)` gives the spans no boundary may cut); any other text is read whole, with
    no separators."""
    rows: list[str] = []
    separators: list[list[str]] = []
    for text in texts:
        if not _BOUNDARY.search(text):  # one sentence: no spans to find (the common UI string)
            rows.append(text)
            separators.append([])
            continue
        parts, seps = segments(text, keep(text) if keep is not None else ())
        if len(parts) < 2:
            rows.append(text)
            separators.append([])
            continue
        if len(parts) > max_parts:
            rest = parts[max_parts - 1]
            for sep, part in zip(seps[max_parts:-1], parts[max_parts:]):
                rest += sep + part
            parts, seps = parts[:max_parts - 1] + [rest], seps[:max_parts] + [seps[-1]]
        rows.extend(parts)
        separators.append(seps)
    return rows, separators


def join(outputs: Sequence[str], separators: list[list[str]]) -> list[str]:
    """Each text's outputs (one per part, in order) between its separators as written (a text read whole
    has none: its one output)."""
    out: list[str] = []
    k = 0
    for seps in separators:
        n = max(len(seps) - 1, 1)
        got = list(outputs[k:k + n])
        if len(got) < n:
            raise ValueError(f"{len(outputs)} outputs for more parts")
        if not seps:
            out.append(got[0])
        else:
            out.append(seps[0] + "".join(part + sep for part, sep in zip(got, seps[1:])))
        k += n
    if k != len(outputs):
        raise ValueError(f"{len(outputs)} outputs for {k} parts")
    return out


def pool(probs: np.ndarray, owner: np.ndarray, count: int) -> np.ndarray:
    """Per text, the normalised geometric mean of its rows' probabilities: (M, C) -> (count, C) float32.
    A text of one row keeps that row's probabilities (up to float rounding)."""
    logp = np.log(np.maximum(probs.astype(np.float64), 1e-12))  # (M, C)
    sums = np.zeros((count, probs.shape[1]), np.float64)
    np.add.at(sums, owner, logp)
    mean = sums / np.maximum(np.bincount(owner, minlength=count), 1)[:, None]  # (count, C)
    mean -= mean.max(axis=1, keepdims=True)
    out = np.exp(mean)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)
