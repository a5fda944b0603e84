"""Translation: placeholders survive masking and restoring; greedy and beam search over toy step
functions (hand-made Markov "language models" written as numpy transition tables)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from sensorium.runtime.beam_search import Constraint, append_missing, beam_search, greedy_decode, normalised_score
from sensorium.runtime.placeholders import (
    MAX_PLACEHOLDERS,
    PLACEHOLDER_SYMBOLS,
    find_placeholders,
    missing_placeholders,
    placeholder_counts,
    placeholders_preserved,
    protect,
    protect_pair,
    restore,
)

# ------------------------------------------------------------------------------------------------
# placeholders

KINDS = [
    ("Hello %(name)s, %(count)d items at %(value).2f", ["%(name)s", "%(count)d", "%(value).2f"]),
    ("%s %d %i %f %r %x | %-5.2f %05d | 100%% done", ["%s", "%d", "%i", "%f", "%r", "%x", "%-5.2f", "%05d", "%%"]),
    ("{0} {} {name} {name!r} {value:>10} {obj.attr} {items[0]}",
     ["{0}", "{}", "{name}", "{name!r}", "{value:>10}", "{obj.attr}", "{items[0]}"]),
    ("{{ literal {0} }}", ["{{", "{0}", "}}"]),
    ("Hi {{name}}, {{ user.name | upper }}", ["{{name}}", "{{ user.name | upper }}"]),
    ("<b>bold</b><br><br/><br /> line", ["<b>", "</b>", "<br>", "<br/>", "<br />"]),
    ('See <a href="https://example.org/a b?x=1&y=2">the docs</a>.',
     ['<a href="https://example.org/a b?x=1&y=2">', "</a>"]),
    ("<span class='x'>y</span>", ["<span class='x'>", "</span>"]),
    ("Tom &amp; Jerry&nbsp;&#39;x&#x27; & co", ["&amp;", "&nbsp;", "&#39;", "&#x27;"]),
    ("Total: ${total} ($var stays)", ["${total}"]),
    ("a < b, I <3 it, x<5 and 100% sure", []),
    ("A literal <ph3> in user text", ["<ph3>"]),
    ("Größe: %(size)s – 💾 <i>fertig</i> ✓", ["%(size)s", "<i>", "</i>"]),
]


@pytest.mark.parametrize("text, expected", KINDS)
def test_pattern_finds_each_kind_and_round_trips(text, expected):
    assert find_placeholders(text) == expected
    masked, originals = protect(text)
    assert originals == list(dict.fromkeys(expected))
    assert restore(masked, originals) == text
    for original in originals:  # nothing protected is left in the masked text
        assert original not in masked.replace(PLACEHOLDER_SYMBOLS[originals.index(original)], "")


def test_protect_reuses_the_symbol_of_a_repeated_placeholder():
    masked, originals = protect("%(n)s of %(total)s: %(n)s <b>x</b> <b>y</b>")
    assert masked == "<ph0> of <ph1>: <ph0> <ph2>x<ph3> <ph2>y<ph3>"
    assert originals == ["%(n)s", "%(total)s", "<b>", "</b>"]


def test_protect_caps_at_sixteen_and_keeps_symbol_lookalikes():
    text = " ".join(f"%(v{i})s" for i in range(20))
    masked, originals = protect(text)
    assert len(originals) == MAX_PLACEHOLDERS
    assert masked.startswith("<ph0> <ph1>") and masked.endswith("<ph15> %(v16)s %(v17)s %(v18)s %(v19)s")
    assert restore(masked, originals) == text
    # a literal <ph3> beyond the cap still gets a symbol: left as text, restore would misread it
    text = text + " <ph3>"
    masked, originals = protect(text)
    assert len(originals) == MAX_PLACEHOLDERS and "<ph3>" in originals
    assert restore(masked, originals) == text


def test_restore_drops_out_of_range_symbols_and_keeps_whitespace():
    originals = ["%(n)d", "<b>"]
    assert restore("Sie haben <ph0>  Elemente <ph1>neu <ph7>!", originals) == "Sie haben %(n)d  Elemente <b>neu !"
    assert restore("<ph0><ph0>", originals) == "%(n)d%(n)d"


def test_protect_pair_and_preserved():
    src = "You have %(count)d new <b>messages</b>, %(name)s"
    masked_src, masked_tgt, ok = protect_pair(src, "%(name)s, Sie haben %(count)d neue <b>Nachrichten</b>")
    assert ok and masked_src == "You have <ph0> new <ph1>messages<ph2>, <ph3>"
    assert masked_tgt == "<ph3>, Sie haben <ph0> neue <ph1>Nachrichten<ph2>"
    # a missing and an invented placeholder: masked as far as possible, not ok
    _, masked_tgt, ok = protect_pair(src, "Sie haben %(count)d neue Nachrichten, %(user)s")
    assert not ok and masked_tgt == "Sie haben <ph0> neue Nachrichten, %(user)s"
    _, _, ok = protect_pair("%s and %s", "%s und")  # count matters, not just presence
    assert not ok

    assert placeholders_preserved(src, "%(name)s: %(count)d neue <b>Nachrichten</b>")
    assert not placeholders_preserved(src, "%(name)s: %(count)d neue Nachrichten</b>")
    assert not placeholders_preserved("%s", "%s %s")
    assert not placeholders_preserved("Hallo", "Hallo <br>")  # invented markup fails too
    assert placeholders_preserved("50% off", "50 % Rabatt")


def test_missing_placeholders_and_counts():
    masked, _ = protect("%s, %s and %(x)d")
    assert masked == "<ph0>, <ph0> and <ph1>"
    assert missing_placeholders(masked, "<ph0> und") == [0, 1]
    assert missing_placeholders(masked, "<ph1> <ph0> <ph0>") == []
    assert placeholder_counts([5, 40, 6, 40, 41, 7], symbol_ids=range(40, 56)) == {40: 2, 41: 1}


# ------------------------------------------------------------------------------------------------
# toy models

PAD, BOS, EOS, A, B, C, D, E, PH0, PH1 = range(10)
V = 10


class Markov:
    """step(): log P(next | last token) from per-source tables (S, V, V); records every call."""

    def __init__(self, tables: np.ndarray) -> None:
        tables = np.asarray(tables, dtype=np.float64)
        self.tables = tables if tables.ndim == 3 else tables[None]  # (S, V, V)
        self.rows: list[int] = []

    def __call__(self, source_index: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
        assert prefixes.dtype == np.int32 and prefixes.ndim == 2 and (prefixes[:, 0] == BOS).all()
        self.rows.append(len(source_index))
        probs = self.tables[source_index % len(self.tables), prefixes[:, -1]]  # (N, V)
        with np.errstate(divide="ignore"):
            return np.log(probs).astype(np.float32)  # zeros -> -inf

    def alone(self, i: int) -> Markov:
        return Markov(self.tables[i])


def table(rows: dict[int, dict[int, float]], vocab: int = V) -> np.ndarray:
    """Transition table (V, V) from {last: {next: p}}; unlisted rows end at once."""
    t = np.zeros((vocab, vocab))
    t[:, EOS] = 1.0
    for last, nxt in rows.items():
        t[last] = 0.0
        for token, p in nxt.items():
            t[last, token] = p
    return t


def random_tables(seed: int, sources: int, eos: float = 0.15, zeros: float = 0.2) -> np.ndarray:
    """Random transition tables (S, V, V) with some impossible (zero) transitions."""
    rng = np.random.default_rng(seed)
    t = rng.dirichlet(np.full(V, 0.7), size=(sources, V)) * (rng.random((sources, V, V)) > zeros)
    t[..., EOS] = eos * rng.random((sources, V)) if eos else 0.0
    t[..., PAD] = t[..., BOS] = 0.0
    t[..., A] += 1e-3  # never an all-zero row
    return t / t.sum(-1, keepdims=True)


def seq_log_prob(t: np.ndarray, ids: list[int]) -> float:
    path = [BOS] + ids + [EOS]
    return float(sum(np.log(t[a, b]) for a, b in zip(path, path[1:])))


# ------------------------------------------------------------------------------------------------
# greedy vs beam

GARDEN = table({BOS: {A: 0.5, B: 0.4, EOS: 0.1},
                A: {C: 0.35, D: 0.35, EOS: 0.3},  # C and D tie: the lower id wins
                B: {EOS: 0.9, C: 0.1}})


def test_beam_finds_the_path_greedy_misses():
    greedy = greedy_decode(Markov(GARDEN), 1, bos_id=BOS, eos_id=EOS, max_lengths=[5])
    assert greedy == [[A, C]]
    for penalty in (0.0, 0.6):
        model = Markov(GARDEN)
        assert beam_search(model, 1, bos_id=BOS, eos_id=EOS, max_lengths=[5], beam=2, length_penalty=penalty) == [[B]]
        assert model.rows == [1, 2]  # stopped early: no live hypothesis (A C, A D) can beat B any more
    assert seq_log_prob(GARDEN, [B]) > seq_log_prob(GARDEN, [A, C])  # 0.36 > 0.175


def test_beam_one_is_greedy():
    cases = [(Markov(GARDEN), [5], None)]
    for seed in range(6):
        tables = random_tables(seed, 3)
        constraints = [Constraint({PH0: 1}, frozenset({PAD, BOS, PH1})), None,
                       Constraint({PH0: 1, PH1: 2}, frozenset({PAD, BOS}))]
        cases += [(Markov(tables), [4, 9, 12], None), (Markov(tables), [6, 3, 12], constraints)]
    for model, max_lengths, constraints in cases:
        n = len(max_lengths)
        greedy = greedy_decode(model, n, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths, constraints=constraints)
        for penalty in (0.0, 0.6, 2.0):
            assert beam_search(model, n, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths, beam=1,
                               length_penalty=penalty, constraints=constraints) == greedy


def test_length_penalty_chooses_between_short_and_long():
    # short: A (p=.55); long: B F G H I J (p=.45, every later step certain)
    F, G, H, I, J = range(10, 15)
    t = table({BOS: {A: 0.55, B: 0.45}, B: {F: 1}, F: {G: 1}, G: {H: 1}, H: {I: 1}, I: {J: 1}}, vocab=15)
    short, long = [A], [B, F, G, H, I, J]
    assert normalised_score(math.log(0.55), 1, 0.6) < normalised_score(math.log(0.45), 6, 0.6)

    def run(penalty: float) -> list[int]:
        return beam_search(Markov(t), 1, bos_id=BOS, eos_id=EOS, max_lengths=[10], beam=2, length_penalty=penalty)[0]

    assert run(0.0) == short
    assert run(0.6) == long
    assert greedy_decode(Markov(t), 1, bos_id=BOS, eos_id=EOS, max_lengths=[10]) == [short]


def test_early_stop_never_changes_the_result():
    """A positive log-probability (on PAD, which is forbidden) switches the early stop off."""
    for seed in range(6):
        tables = random_tables(seed, 3, eos=0.4)
        plain, no_bound = Markov(tables), Markov(tables)

        def positive(source_index: np.ndarray, prefixes: np.ndarray, model=no_bound) -> np.ndarray:
            out = model(source_index, prefixes)  # (N, V)
            out[:, PAD] = 1.0
            return out

        constraints = [Constraint({}, frozenset({PAD}))] * 3
        kw = dict(bos_id=BOS, eos_id=EOS, max_lengths=[12, 12, 12], beam=3, constraints=constraints)
        for penalty in (0.0, 0.6, 1.5):
            expected = beam_search(plain, 3, length_penalty=penalty, **kw)
            assert beam_search(positive, 3, length_penalty=penalty, **kw) == expected
        assert sum(plain.rows) < sum(no_bound.rows)


def test_batched_equals_one_by_one():
    for seed in range(4):
        model = Markov(random_tables(seed, 3))
        max_lengths = [3, 9, 6]
        constraints = [None, Constraint({PH1: 1}, frozenset({PAD, BOS, PH0})), None]
        for decode in (greedy_decode, lambda *a, **k: beam_search(*a, beam=3, **k)):
            batched = decode(model, 3, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths, constraints=constraints)
            alone = [decode(model.alone(i), 1, bos_id=BOS, eos_id=EOS, max_lengths=[max_lengths[i]],
                            constraints=[constraints[i]])[0] for i in range(3)]
            assert batched == alone


def test_one_step_call_per_time_step_for_all_sources():
    """A model that never ends: every source runs to its own maximum length."""
    max_lengths = [2, 6, 4]
    model = Markov(random_tables(1, 3, eos=0.0))
    out = beam_search(model, 3, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths, beam=3)
    assert [len(o) for o in out] == max_lengths
    assert model.rows == [3, 9, 6, 6, 3, 3]  # sources x live beams; finished sources drop out
    model = Markov(random_tables(1, 3, eos=0.0))
    out = greedy_decode(model, 3, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths)
    assert [len(o) for o in out] == max_lengths and model.rows == [3, 3, 2, 2, 1, 1]
    assert greedy_decode(model, 2, bos_id=BOS, eos_id=EOS, max_lengths=[0, 0]) == [[], []]


def test_all_minus_inf_rows_are_safe():
    dead = np.zeros((V, V))  # every continuation impossible
    for decode in (greedy_decode, beam_search):
        assert decode(Markov(dead), 2, bos_id=BOS, eos_id=EOS, max_lengths=[3, 3]) == [[], []]

    def nan_step(source_index: np.ndarray, prefixes: np.ndarray) -> np.ndarray:
        out = np.full((len(source_index), V), np.nan, dtype=np.float32)  # (N, V)
        out[:, A if prefixes.shape[1] < 3 else EOS] = -0.1
        return out

    assert beam_search(nan_step, 1, bos_id=BOS, eos_id=EOS, max_lengths=[5]) == [[A, A]]


# ------------------------------------------------------------------------------------------------
# constraints

SPECIALS = frozenset({PAD, BOS})


def both(model_table: np.ndarray, constraint: Constraint | None, max_length: int = 8) -> list[list[int]]:
    """Greedy and beam (4, GNMT length penalty 0.6: these tables are made for it) outputs for one source."""
    kw = dict(bos_id=BOS, eos_id=EOS, max_lengths=[max_length], constraints=[constraint])
    return [greedy_decode(Markov(model_table), 1, **kw)[0],
            beam_search(Markov(model_table), 1, beam=4, length_penalty=0.6, **kw)[0]]


def test_constraint_forces_a_placeholder_the_model_would_skip():
    t = table({BOS: {A: 0.7, EOS: 0.299, PH0: 0.001}, A: {EOS: 0.999, PH0: 0.001}, PH0: {EOS: 0.9, A: 0.1}})
    assert both(t, None) == [[A], [A]]
    assert both(t, Constraint({PH0: 1}, SPECIALS | {PH1})) == [[A, PH0], [A, PH0]]


def test_constraint_stops_a_placeholder_the_model_would_repeat():
    t = table({BOS: {PH0: 0.9, A: 0.1}, PH0: {PH0: 0.8, EOS: 0.2}})
    assert both(t, None, max_length=5)[0] == [PH0] * 5  # greedy repeats it to the cut
    assert both(t, Constraint({PH0: 1}, SPECIALS | {PH1}), max_length=5) == [[PH0], [PH0]]


def test_forbidden_ids_never_come_out():
    t = table({BOS: {A: 0.6, B: 0.3, EOS: 0.1}, A: {A: 0.9, EOS: 0.1}, B: {EOS: 1.0}})
    assert both(t, Constraint({}, SPECIALS | {A})) == [[B], [B]]


def test_eos_only_after_every_required_placeholder():
    row = {EOS: 0.9, PH0: 0.04, PH1: 0.035, A: 0.025}
    t = table({BOS: row, A: row, PH0: row, PH1: row})
    constraint = Constraint({PH0: 1, PH1: 2}, SPECIALS)
    assert both(t, None) == [[], []]
    for out in both(t, constraint):
        assert sorted(out) == [PH0, PH1, PH1]  # the end came only once all three were out


def test_random_models_respect_constraints():
    for seed in range(5):
        tables = random_tables(seed, 4, eos=0.3)
        constraints = [Constraint.for_source([A, PH0, B, PH0], [PH0, PH1], SPECIALS),
                       Constraint.for_source([PH1], [PH0, PH1], SPECIALS | {C}),
                       Constraint.for_source([A, B], [PH0, PH1], SPECIALS),
                       None]
        assert constraints[0] == Constraint({PH0: 2}, SPECIALS | {PH1})
        max_lengths = [10, 10, 10, 2]
        for out in (greedy_decode(Markov(tables), 4, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths,
                                  constraints=constraints),
                    beam_search(Markov(tables), 4, bos_id=BOS, eos_id=EOS, max_lengths=max_lengths, beam=3,
                                constraints=constraints)):
            for ids, c, limit in zip(out, constraints, max_lengths):
                if c is None:
                    continue
                assert not set(ids) & c.forbidden and EOS not in ids
                for token, need in c.required.items():
                    assert ids.count(token) <= need
                    assert ids.count(token) == need or len(ids) == limit  # only a cut can miss one
                fixed = append_missing(ids, c)
                assert all(fixed.count(token) == need for token, need in c.required.items())


def test_max_length_cut_and_append_missing():
    never = table({BOS: {A: 0.5, EOS: 0.5}, A: {A: 0.5, EOS: 0.5}})  # the placeholder is impossible
    constraint = Constraint({PH0: 1}, SPECIALS)
    for out in both(never, constraint, max_length=4):
        assert out == [A, A, A, A]  # EOS blocked while PH0 is missing, until the cut
        assert append_missing(out, constraint) == [A, A, A, A, PH0]
    only_eos = table({})  # nothing but EOS is possible: EOS is allowed after all
    for out in both(only_eos, constraint):
        assert out == [] and append_missing(out, constraint) == [PH0]
    assert append_missing([PH1, A], Constraint({PH0: 1, PH1: 2})) == [PH1, A, PH0, PH1]
    assert append_missing([A], None) == [A]


def test_eos_allowed_as_last_resort_pays_its_log_prob():
    """After A only EOS is possible (p=.1): EOS is allowed though PH0 is missing, and costs log .1,
    so beam search prefers B PH0 (p=.24) to A (p=.06) even with PH0 cut off from A's path."""
    t = table({BOS: {A: 0.6, B: 0.4}, A: {EOS: 0.1}, B: {PH0: 0.6, C: 0.4}})
    constraint = Constraint({PH0: 1}, SPECIALS)
    kw = dict(bos_id=BOS, eos_id=EOS, max_lengths=[5], constraints=[constraint])
    assert greedy_decode(Markov(t), 1, **kw) == [[A]]
    assert beam_search(Markov(t), 1, beam=2, length_penalty=0.0, **kw) == [[B, PH0]]


def test_constraint_validation():
    with pytest.raises(ValueError, match="both required and forbidden"):
        Constraint({PH0: 1}, frozenset({PH0}))
    with pytest.raises(ValueError, match=">= 1"):
        Constraint({PH0: 0})
    with pytest.raises(ValueError, match="max_lengths"):
        greedy_decode(Markov(GARDEN), 2, bos_id=BOS, eos_id=EOS, max_lengths=[3])
