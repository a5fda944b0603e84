"""PLACEHOLDER_PATTERN on hostile input: linear time on adversarial strings, and the SavedModel's in-graph
RE2 copy (`export.translation_graph.re2_pattern`) matching exactly what Python's `re` matches."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys

import pytest

from sensorium.runtime.placeholders import PLACEHOLDER_PATTERN, find_placeholders

# name -> an input of 10^4-10^5 characters. The first three hung the old pattern: nested quantifiers over
# the same text in the `{{ x | f:arg }}` branch (exponential: 93 characters never finished), and two
# quadratic splits (ICU style spaces, %-flag zeros vs width) that took minutes at this size. The rest
# are the other classic shapes (nested braces, runs of openers, unclosed tags, long attribute lists).
ADVERSARIAL = {
    "jinja filter args": "{{a" + "|b:" * 30_000,
    "jinja filter args with spaces": "{{ a" + " | b:  " * 12_000,
    "icu style spaces": "{0, number," + " " * 100_000,
    "percent zeros": "%" + "0" * 100_000,
    "percent flags": "%(a)" + "-0+#" * 25_000,
    "percent-paren runs": "%(" * 50_000,
    "percent runs": "%" * 99_999 + "(",
    "nested braces": "{" * 50_000 + "}" * 50_000,
    "doubled braces": "{{" * 50_000,
    "unclosed jinja tags": "{{ a | b:" * 15_000,
    "nested format fields": "{:" + "{a}" * 30_000,
    "format spec runs": "{0:" * 30_000,
    "index and attribute chains": "{a" + "[x].b" * 20_000,
    "icu runs": "{0, number, " * 8_000,
    "template openers": "${" * 50_000,
    "unclosed tag, bare attributes": "<a" + " b=c" * 25_000,
    "unclosed tag, quoted attributes": "<a" + ' b="x"' * 15_000,
    "unclosed tag, many names": "<a" + " b" * 50_000,
    "unclosed quotes": '<a b="' * 15_000,
    "mixed quotes": "<a b='" + '" c="' * 15_000,
    "tag openers": "<a " * 30_000,
    "tag spaces": "<a" + " " * 100_000 + "/",
    "entities": "&" + "a" * 100_000,
    "entity runs": "&#" * 50_000,
}

_TIMER = """
import json, sys, time
from sensorium.runtime.placeholders import find_placeholders, protect
text = sys.stdin.read()
t0 = time.perf_counter()
find_placeholders(text)
protect(text)
print(json.dumps(time.perf_counter() - t0))
"""


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_pattern_is_fast_on_adversarial_input(name):
    """Each case in a child process with a hard timeout, so a regression fails instead of hanging the suite."""
    text = ADVERSARIAL[name]
    try:
        done = subprocess.run([sys.executable, "-c", _TIMER], input=text, capture_output=True, text=True,
                              timeout=30, check=True)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name}: placeholder matching of {len(text)} characters did not finish in 30 s")
    seconds = json.loads(done.stdout)
    assert seconds < 1.0, f"{name}: {seconds:.2f} s for {len(text)} characters"


def test_ordinary_matches_kept_where_the_grammar_changed():
    assert find_placeholders("{{ user.name | upper }} {{ d|date:'short' }} {{x|f:a b |g}}") == [
        "{{ user.name | upper }}", "{{ d|date:'short' }}", "{{x|f:a b |g}}"]
    assert find_placeholders("%05d %010.2f %-0+#8x %00d") == ["%05d", "%010.2f", "%-0+#8x", "%00d"]
    assert find_placeholders("{0, number}, {n,number,  integer }, {d, date , short}") == [
        "{0, number}", "{n,number,  integer }", "{d, date , short}"]
    assert find_placeholders("{:{w}.{p}f} {x:>{w}}") == ["{:{w}.{p}f}", "{x:>{w}}"]


# --- the in-graph RE2 copy -------------------------------------------------------------------------
TRICKY = [
    "Hello %(name)s, %(count)d items at %(value).2f", "%s %d %i %f %r %x | %-5.2f %05d | 100%% done",
    "{0} {} {name} {name!r} {value:>10} {obj.attr} {items[0]}", "{{ literal {0} }}",
    "Hi {{name}}, {{ user.name | upper }}", "<b>bold</b><br><br/><br /> line",
    'See <a href="https://example.org/a b?x=1&y=2">the docs</a>.', "<span class='x'>y</span>",
    "Tom &amp; Jerry&nbsp;&#39;x&#x27; & co", "Total: ${total} ($var stays)", "a < b, I <3 it, x<5 and 100% sure",
    "A literal <ph3> in user text", "Größe: %(size)s – 💾 <i>fertig</i> ✓",
    "<br\x0b/> <a\x0bhref=x> {{\x0bname\x0b}} %(a\x0bb)s {0,\x0bnumber}",  # vertical tab: \s in Python, not RE2
    "<a\thref = 'x'\n title=\"y\"\r\n/> <p\f>", "{{ d | date:'a|b' }} {{ x | f:a| }} {{a|b:c|d:e}}",
    "{0, number,\t integer} {x,date} {1 ,time, short} {d, spellout, %x}", "{:{w}.{p}f} {:{a}{b}} {:{{}}",
    "%% %%% %(a) s %(a)-5s %.*f %*d %0*.*f %+ d", "<a b=c d='e' f=\"g\" h>", "<a b=`x`> <a b c=> <x:y-z.w/>",
    "&amp &#x; &#1234567; &#12345678; &a1234567890123456789012345678901; &ab;", "${a{b}} ${} $ {x}",
    "{a[0][1].b.c!s:>{w}} {0[}] {a.0} {!r} {:}", "{{{{}}}} {{{0}}}", "<ph0><ph15><ph16>", "",
]
_FUZZ_TOKENS = ["<", "<a", "</b", "a", " ", "\t", "\x0b", "=", '"', "'", "`", "/", ">", "{", "}", "{{", "}}", "|",
                ":", "%", "(", ")", "0", "7", ",", "number", "date", ".", "[", "]", "!", "r", "$", "&", ";", "#",
                "x", "-", "+", "*", "%(", "{0", "{a", "é", "💾"]


def _fuzz_corpus(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_FUZZ_TOKENS) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def _marked(pattern: re.Pattern[str], text: str) -> str:
    return pattern.sub(lambda m: "\x01" + m.group() + "\x02", text)


def test_re2_pattern_is_derived_from_the_python_pattern():
    from sensorium.export.translation_graph import re2_pattern

    compact = re2_pattern()
    assert "#" not in compact.replace(r"\#", "") and r"\s" not in compact and "\n" not in compact
    as_python = re.compile(compact, re.ASCII)
    for text in TRICKY + _fuzz_corpus(3000, seed=1) + list(ADVERSARIAL.values())[:3]:
        assert _marked(as_python, text) == _marked(PLACEHOLDER_PATTERN, text), text[:80]


def test_re2_in_graph_matches_what_python_matches():
    tf = pytest.importorskip("tensorflow")
    from sensorium.export.translation_graph import re2_pattern

    texts = TRICKY + _fuzz_corpus(3000, seed=2)
    got = tf.strings.regex_replace(tf.constant(texts), re2_pattern(), "\x01\\0\x02").numpy()
    mismatches = [t for t, g in zip(texts, got) if g.decode() != _marked(PLACEHOLDER_PATTERN, t)]
    assert not mismatches, mismatches[:5]
