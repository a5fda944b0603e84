"""Greedy and beam search over a decoder step function, in numpy, batched across sources.

The model is seen through one function::

    step(source_index (N,) int64, prefixes (N, t) int32) -> log-probabilities (N, V) of the next token

Each row is a hypothesis of source ``source_index[row]``; its prefix starts with BOS and all rows of
one call have the same length t. Every live hypothesis of every unfinished source goes into ONE call
per time step (rows = sources x live beams), so a batch costs at most ``max(max_lengths)`` calls;
finished sources drop out of later calls. Outputs are token ids without BOS and EOS.

Constraints (one per source) keep placeholder symbols intact by masking log-probabilities before
anything is chosen: forbidden ids never come out; a required id stops once emitted its required
number of times; EOS is blocked while a required id is still missing, unless nothing else is
allowed. So the output holds each required id exactly as often as required, except when
``max_lengths[i]`` cuts a hypothesis first: the caller then adds the missing ones with
`append_missing` (at the end, which is where a cut output stops anyway).

Scores assume log-probabilities (<= 0). Non-finite values (NaN, +-inf) count as -inf; a hypothesis
with no finite continuation is finished as it is. Ties go to the lowest token id (and, in beam
search, to the better-ranked parent).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

Step = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Constraint:
    """What one source's output must hold.

    required: placeholder token id -> how many times it must appear in the output.
    forbidden: ids never to emit (PAD, BOS, UNK, and the placeholder ids the source lacks: the
        decoder only knows placeholders through this constraint; `for_source` builds both sets).
    """

    required: dict[int, int] = field(default_factory=dict)
    forbidden: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "required", {int(k): int(v) for k, v in self.required.items()})
        object.__setattr__(self, "forbidden", frozenset(int(i) for i in self.forbidden))
        if any(v < 1 for v in self.required.values()):
            raise ValueError(f"required counts must be >= 1, got {self.required}")
        if clash := self.forbidden & self.required.keys():
            raise ValueError(f"ids both required and forbidden: {sorted(clash)}")

    @classmethod
    def for_source(cls, source_ids: Iterable[int], placeholder_ids: Iterable[int],
                   forbidden: Iterable[int] = ()) -> Constraint:
        """Require each placeholder id as often as the (masked, tokenised) source has it; forbid the
        other placeholder ids and `forbidden` (e.g. PAD, BOS, UNK)."""
        placeholders = set(int(i) for i in placeholder_ids)
        required: dict[int, int] = {}
        for i in source_ids:
            if int(i) in placeholders:
                required[int(i)] = required.get(int(i), 0) + 1
        return cls(required, frozenset(forbidden) | (placeholders - required.keys()))


def append_missing(ids: Sequence[int], constraint: Constraint | None) -> list[int]:
    """`ids` plus each required id it lacks (as many times as it lacks it, in `required`'s order).

    The fallback for outputs cut at the maximum length before every placeholder came out.
    """
    out = [int(i) for i in ids]
    if constraint is None:
        return out
    for token, need in constraint.required.items():
        out += [token] * (need - out.count(token))
    return out


DEFAULT_LENGTH_PENALTY = 2.0  # GNMT alpha of beam search (`normalised_score`); chosen on ui-de validation


def normalised_score(score: float, length: int, length_penalty: float) -> float:
    """GNMT length normalisation: score / ((5 + length) / 6) ** length_penalty.

    `length` counts output tokens without BOS and EOS.
    """
    return score / ((5.0 + length) / 6.0) ** length_penalty


class _Rules:
    """A constraint as arrays, and a hypothesis' emitted counts of its required ids."""

    def __init__(self, constraint: Constraint | None) -> None:
        c = constraint or Constraint()
        self.forbidden = np.array(sorted(c.forbidden), dtype=np.int64)  # (F,)
        self.ids = np.array(list(c.required), dtype=np.int64)  # (R,)
        self.need = np.array(list(c.required.values()), dtype=np.int64)  # (R,)
        self.slot = {int(t): j for j, t in enumerate(self.ids)}
        self.empty = self.forbidden.size == 0 and self.ids.size == 0

    def start(self) -> tuple[int, ...]:
        return (0,) * len(self.ids)

    def advance(self, emitted: tuple[int, ...], token: int) -> tuple[int, ...]:
        j = self.slot.get(token)
        if j is None:
            return emitted
        return emitted[:j] + (emitted[j] + 1,) + emitted[j + 1:]

    def apply(self, row: np.ndarray, emitted: tuple[int, ...], eos_id: int) -> None:
        """Mask one row of log-probabilities (V,) in place."""
        if self.empty:
            return
        row[self.forbidden] = -np.inf
        if self.ids.size:
            have = np.asarray(emitted)  # (R,)
            row[self.ids[have >= self.need]] = -np.inf
            if (have < self.need).any():
                eos = row[eos_id]
                row[eos_id] = -np.inf
                if not np.isfinite(row).any():  # nothing else allowed: let it end
                    row[eos_id] = eos


def _validate(num_sources: int, max_lengths: Sequence[int],
              constraints: Sequence[Constraint | None] | None) -> list[_Rules]:
    if len(max_lengths) != num_sources:
        raise ValueError(f"max_lengths has {len(max_lengths)} entries for {num_sources} sources")
    if constraints is not None and len(constraints) != num_sources:
        raise ValueError(f"constraints has {len(constraints)} entries for {num_sources} sources")
    return [_Rules(None if constraints is None else c) for c in (constraints or [None] * num_sources)]


def _log_probs(step: Step, source_index: list[int], prefixes: list[list[int]], bos_id: int) -> np.ndarray:
    """One step call -> sanitised float64 log-probabilities (N, V): non-finite values become -inf."""
    index = np.asarray(source_index, dtype=np.int64)  # (N,)
    batch = np.asarray([[bos_id] + p for p in prefixes], dtype=np.int32)  # (N, t)
    out = np.asarray(step(index, batch), dtype=np.float64)  # (N, V)
    if out.ndim != 2 or out.shape[0] != len(index):
        raise ValueError(f"step returned shape {out.shape} for {len(index)} rows; expected (N, V)")
    return np.where(np.isfinite(out), out, -np.inf)


def greedy_decode(step: Step, num_sources: int, *, bos_id: int, eos_id: int, max_lengths: Sequence[int],
                  constraints: Sequence[Constraint | None] | None = None) -> list[list[int]]:
    """Most probable next token at each step, for all sources at once -> ids per source."""
    rules = _validate(num_sources, max_lengths, constraints)
    outputs: list[list[int]] = [[] for _ in range(num_sources)]
    emitted = [r.start() for r in rules]
    active = [i for i in range(num_sources) if max_lengths[i] > 0]
    while active:
        log_probs = _log_probs(step, active, [outputs[i] for i in active], bos_id)  # (N, V)
        still: list[int] = []
        for row, i in enumerate(active):
            rules[i].apply(log_probs[row], emitted[i], eos_id)
            token = int(np.argmax(log_probs[row]))  # first maximum: lowest id on ties
            if token == eos_id or log_probs[row, token] == -np.inf:
                continue  # ended, or no finite continuation: finished as it is
            outputs[i].append(token)
            emitted[i] = rules[i].advance(emitted[i], token)
            if len(outputs[i]) < max_lengths[i]:
                still.append(i)
        active = still
    return outputs


@dataclass
class _Hyp:
    tokens: list[int]  # output ids so far, no BOS
    score: float  # sum of log-probabilities
    emitted: tuple[int, ...]  # counts of the source's required ids


def _top(flat: np.ndarray, m: int) -> np.ndarray:
    """Indices of the m largest finite values of `flat` (K,), best first, ties -> lower index."""
    index = np.flatnonzero(flat > -np.inf)  # (F,)
    if index.size > m:
        values = flat[index]
        kth = np.partition(values, values.size - m)[values.size - m]
        index = index[values >= kth]  # every value tied with the m-th stays, so the cut below is deterministic
    order = np.lexsort((index, -flat[index]))
    return index[order][:m]


def beam_search(step: Step, num_sources: int, *, bos_id: int, eos_id: int, max_lengths: Sequence[int], beam: int = 4,
                length_penalty: float = DEFAULT_LENGTH_PENALTY,
                constraints: Sequence[Constraint | None] | None = None) -> list[list[int]]:
    """Beam search with GNMT length normalisation, all sources' beams in one step call -> ids per source.

    Each step, a source's candidates (live hypotheses x vocabulary, raw log-prob sums) are ranked and
    taken best first: an EOS candidate ranked within the top `beam` finishes (goes to the source's
    finished list with its normalised score, `normalised_score`), other EOS candidates are dropped,
    and the first `beam` non-EOS candidates are the new live hypotheses. Hypotheses that reach
    ``max_lengths[i]`` are finished as they are.

    Stopping rule for a source: it stops once it has `beam` finished hypotheses (so beam=1 is greedy
    search exactly), when no live hypothesis is left, or at its maximum length. It also stops early
    when no live hypothesis can beat the best finished one: with log-probs <= 0, a live hypothesis of
    raw score s and length n can at best reach s / max(lp(n), lp(max_length)), lp(n) = ((5+n)/6)**alpha;
    this only saves step calls and never changes the result. The answer is the finished hypothesis
    with the best normalised score (the earliest finished on ties).
    """
    if beam < 1:
        raise ValueError(f"beam must be >= 1, got {beam}")
    rules = _validate(num_sources, max_lengths, constraints)
    live: list[list[_Hyp]] = [[_Hyp([], 0.0, r.start())] for r in rules]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(num_sources)]
    active = [i for i in range(num_sources) if max_lengths[i] > 0]
    bound_is_valid = True  # False once a step returns a positive log-probability

    def lp(n: int) -> float:
        return ((5.0 + n) / 6.0) ** length_penalty

    while active:
        source_index = [i for i in active for _ in live[i]]
        log_probs = _log_probs(step, source_index, [h.tokens for i in active for h in live[i]], bos_id)  # (N, V)
        vocab = log_probs.shape[1]
        bound_is_valid = bound_is_valid and not (log_probs > 0).any()
        still: list[int] = []
        row = 0
        for i in active:
            hyps, done = live[i], finished[i]
            block = log_probs[row: row + len(hyps)]  # (k, V)
            row += len(hyps)
            for h, r in zip(hyps, block):
                rules[i].apply(r, h.emitted, eos_id)
                if not (r > -np.inf).any():  # no finite continuation: finished as it is
                    done.append((normalised_score(h.score, len(h.tokens), length_penalty), h.tokens))
            scores = np.array([h.score for h in hyps])[:, None] + block  # (k, V)
            new: list[_Hyp] = []
            for rank, flat in enumerate(_top(scores.ravel(), 2 * beam)):
                parent, token = divmod(int(flat), vocab)
                h, s = hyps[parent], float(scores[parent, token])
                if token == eos_id:
                    if rank < beam:
                        done.append((normalised_score(s, len(h.tokens), length_penalty), h.tokens))
                    continue
                new.append(_Hyp(h.tokens + [token], s, rules[i].advance(h.emitted, token)))
                if len(new) == beam:
                    break
            if new and len(new[0].tokens) >= max_lengths[i]:  # cut at the maximum length
                done += [(normalised_score(h.score, len(h.tokens), length_penalty), h.tokens) for h in new]
                new = []
            live[i] = new
            if not new or len(done) >= beam:
                continue
            if done and bound_is_valid:
                best_live = max(h.score for h in new)
                n = len(new[0].tokens)
                if max(d[0] for d in done) >= best_live / max(lp(n), lp(max_lengths[i])):
                    continue
            still.append(i)
        active = still

    results: list[list[int]] = []
    for i in range(num_sources):
        if finished[i]:
            best = max(range(len(finished[i])), key=lambda j: (finished[i][j][0], -j))
            results.append(list(finished[i][best][1]))
        else:  # only when max_lengths[i] == 0
            results.append(list(live[i][0].tokens) if live[i] else [])
    return results
