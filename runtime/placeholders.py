"""Placeholders and markup that must come out of a translation exactly as they went in.

UI strings carry printf and str.format fields, HTML tags and entities. Rather than hoping the model
copies them, `protect` swaps each one for an atomic symbol ``<phK>`` (a user-defined piece of the
SentencePiece model, so one token id whatever surrounds it), the model learns to move the symbols,
the decoder is constrained to emit each symbol as often as the source has it (`decode.Constraint`),
and `restore` swaps the originals back.

K is the index of the placeholder's distinct string in order of first appearance: the same string
twice gets the same symbol twice. At most `MAX_PLACEHOLDERS` distinct strings are protected; the
rest stay plain text (and the model may or may not copy them).

There is no special case for our own symbols: a literal ``<ph3>`` in user text is an HTML-like tag
to `PLACEHOLDER_PATTERN`, so it is protected like any tag and round-trips. Every ``<phK>`` in a
masked string is therefore ours.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

MAX_PLACEHOLDERS = 16
PLACEHOLDER_SYMBOLS: tuple[str, ...] = tuple(f"<ph{i}>" for i in range(MAX_PLACEHOLDERS))

# Alternatives start with different characters (%, {, }, $, <, &), so the leftmost match is the
# intended one; where two start alike the longer comes first ("%%" is tried before "%d" can't
# apply, "{{name}}" before "{{"). Each branch is described inline.
#
# Linear time on any input (`re` backtracks, and UI strings come from untrusted catalogues): within
# a branch no two quantified parts can match the same characters, so a failing attempt never retries
# another split of the same text. Hence: the %-width cannot start with 0 (a zero there is the flag),
# a `{{ x | f:arg }}` argument cannot hold "|" and swallows the spaces before the next "|" or "}}",
# an ICU style argument swallows the spaces after its comma, and the format spec is an unrolled loop.
# And no branch scans past the next point where another long attempt of it could start (an unquoted
# "<", a "{" beyond one nested field, a "(" inside %(name)), so all start points together stay
# linear. No atomic groups or possessive quantifiers: Python 3.10's `re` and RE2 lack them.
PLACEHOLDER_PATTERN: re.Pattern[str] = re.compile(
    r"""
    # --- Python %-formatting -----------------------------------------------------------------
      %%                                        # a literal percent sign
    | %(?:\([^()\s]+\))?                        # %(name)... (mapping key, no spaces)
       [\#0+-]*                                 # flags; NOT the space flag: "100% sure" is text
       (?:[1-9]\d*|\*)?(?:\.(?:\d+|\*))?        # width (a leading 0 is a flag), .precision
       [diouxXeEfFgGcrsa]                       # conversion
    # --- templates and str.format ------------------------------------------------------------
    | \$\{[^{}]*\}                              # ${var} (JS / shell template; bare $var is text)
    | \{\{\s*[A-Za-z_][\w.]*\s*                 # {{name}}, {{ user.name | upper }} (i18next,
       (?:\|\s*[\w.]+(?::[^{}|]*|\s*))*         #   Jinja-like): one placeholder, not three;
      \}\}                                      #   a filter's :argument holds no "|"
    | \{\{ | \}\}                               # doubled braces: literal { and } of str.format
    | \{(?:\d+|[A-Za-z_]\w*)                    # ICU simple argument: {0, number}, {d, date, short}
       \s*,\s*(?:number|date|time|spellout|ordinal|duration)(?:\s*,[^{}]*)?\}
    | \{(?:\d+|[A-Za-z_]\w*)?                   # {} {0} {name}
       (?:\.[A-Za-z_]\w*|\[[^\[\]{}]*\])*       # .attr, [key]
       (?:![rsa])?                              # !r conversion
       (?::[^{}]*(?:\{[^{}]*\}[^{}]*)*)?        # :format spec, nested {field}s allowed (one level)
      \}
    # --- markup -------------------------------------------------------------------------------
    | </?[A-Za-z][\w:.-]*                       # tag name right after "<" ("a < b", "<3" are text)
       (?:\s+[^\s"'<>/=]+                       # attributes: name
          (?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?   # = "value", 'value' or bare value
       )*
       \s*/?>                                   # >, />, " />"
    | &(?:[A-Za-z][A-Za-z0-9]{1,31}|\#[0-9]{1,7}|\#[xX][0-9A-Fa-f]{1,6});   # &amp; &#39; &#x27;
    """,
    re.VERBOSE | re.ASCII,  # ASCII \w, \d, \s: what RE2 (the SavedModel's in-graph copy) means by them
)

_SYMBOL = re.compile(r"<ph(0|[1-9][0-9]*)>")  # what `restore` replaces
_LOOKALIKE = re.compile(r"<ph(0|[1-9][0-9]*)>\Z")  # user text that would read as one of our symbols


def find_placeholders(text: str) -> list[str]:
    """Every placeholder occurrence in `text`, left to right."""
    return [m.group() for m in PLACEHOLDER_PATTERN.finditer(text)]


def _choose(distinct: Sequence[str]) -> list[str]:
    """The distinct placeholders that get a symbol, in order of first appearance (at most 16).

    Beyond the cap, literal ``<phN>`` look-alikes are kept first: left as plain text they would be
    read back as our symbols by `restore`.
    """
    if len(distinct) <= MAX_PLACEHOLDERS:
        return list(distinct)
    lookalikes = [s for s in distinct if _LOOKALIKE.match(s)]
    if len(lookalikes) > MAX_PLACEHOLDERS:
        raise ValueError(f"text has {len(lookalikes)} distinct literal <phN> strings; "
                         f"at most {MAX_PLACEHOLDERS} can be protected")
    chosen = set(lookalikes)
    for s in distinct:
        if len(chosen) == MAX_PLACEHOLDERS:
            break
        chosen.add(s)
    return [s for s in distinct if s in chosen]


def protect(text: str) -> tuple[str, list[str]]:
    """Replace placeholders by ``<phK>`` in place -> (masked text, originals with originals[K])."""
    distinct = list(dict.fromkeys(find_placeholders(text)))
    originals = _choose(distinct)
    slot = {s: k for k, s in enumerate(originals)}
    return _mask(text, slot), originals


def _mask(text: str, slot: dict[str, int]) -> str:
    """Replace each placeholder that has a slot by its symbol; leave the others as they are."""
    def put(m: re.Match[str]) -> str:
        k = slot.get(m.group())
        return m.group() if k is None else PLACEHOLDER_SYMBOLS[k]

    return PLACEHOLDER_PATTERN.sub(put, text)


def restore(masked: str, originals: Sequence[str]) -> str:
    """``<phK>`` -> originals[K]; a symbol with K out of range is removed. Whitespace is untouched."""
    def put(m: re.Match[str]) -> str:
        k = int(m.group(1))
        return originals[k] if k < len(originals) else ""

    return _SYMBOL.sub(put, masked)


def protect_pair(source: str, target: str) -> tuple[str, str, bool]:
    """Protect a training pair with the source's symbols -> (masked source, masked target, ok).

    A target placeholder that is one of the source's originals gets the source's ``<phK>``. `ok` is
    True when both sides hold the same placeholders the same number of times; otherwise the pair is
    masked as far as possible and the caller may drop it (it would teach the model to drop or invent
    placeholders).
    """
    masked_source, originals = protect(source)
    masked_target = _mask(target, {s: k for k, s in enumerate(originals)})
    ok = Counter(find_placeholders(source)) == Counter(find_placeholders(target))
    return masked_source, masked_target, ok


def placeholder_counts(masked_source_ids: Iterable[int], symbol_ids: Iterable[int]) -> dict[int, int]:
    """Symbol id -> how often it occurs in a tokenised masked source (what the decoder must emit).

    Only symbols that occur are listed, in order of first occurrence.
    """
    symbols = set(int(i) for i in symbol_ids)
    counts: dict[int, int] = {}
    for i in masked_source_ids:
        i = int(i)
        if i in symbols:
            counts[i] = counts.get(i, 0) + 1
    return counts


def symbol_counts(masked: str) -> Counter[int]:
    """K -> how often ``<phK>`` occurs in a masked string."""
    return Counter(int(m.group(1)) for m in _SYMBOL.finditer(masked))


def missing_placeholders(masked_source: str, masked_output: str) -> list[int]:
    """The K the output lacks relative to the source, repeated by the shortfall, in source order.

    For repairing an output by text (append ``<phK>`` for each) when the decoder was not constrained.
    """
    need, have = symbol_counts(masked_source), symbol_counts(masked_output)
    return [k for k in need for _ in range(need[k] - have.get(k, 0))]


def placeholders_preserved(source: str, output: str) -> bool:
    """Whether the final output holds exactly the source's placeholders, each as often.

    Compared as multisets of `PLACEHOLDER_PATTERN` matches on the restored strings, so an invented
    placeholder fails the check too, as does one beyond the 16 protected that the model mangled.
    """
    return Counter(find_placeholders(source)) == Counter(find_placeholders(output))
