"""Transcript normalisation, used by every part of the speech task (corpus, training, WER/CER).

One rule set, everywhere:
1. Unicode NFKC, then lower case;
2. numbers are spelled as English words: up to four digits as a number ("2024" -> "two thousand
   twenty four"), longer digit strings and those with a leading zero digit by digit ("0815" ->
   "zero eight one five"); a decimal point is read "point", then digit by digit; ordinal suffixes
   become ordinals ("21st" -> "twenty first");
3. apostrophes inside words are kept ("don't"); every other character that is not a letter a-z is a
   word boundary; accents are folded to ASCII where a plain letter exists ("café" -> "cafe");
4. words are joined by single spaces, no leading or trailing space.

The character vocabulary of the models is therefore `' abcdefghijklmnopqrstuvwxyz` plus the
CTC blank.
"""
from __future__ import annotations

import re
import unicodedata

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
            "nine": "ninth", "twelve": "twelfth"}
ALPHABET = " 'abcdefghijklmnopqrstuvwxyz"  # index 0 is the space; the CTC blank comes after these

_FOLD = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d", "ð": "d", "þ": "th",
                       "\u2019": "'", "\u2018": "'", "\u02bc": "'"})
_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?(st|nd|rd|th)?", re.IGNORECASE)
_NOT_LETTER = re.compile(r"[^a-z']+")


def number_to_words(n: int) -> str:
    """0 <= n <= 9999 in English words without "and": 1305 -> "one thousand three hundred five"."""
    if not 0 <= n <= 9999:
        raise ValueError(f"number_to_words handles 0..9999, got {n}")
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_to_words(rest))
    rest = n % 1000
    return number_to_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_to_words(rest))


def _ordinal(words: str) -> str:
    head, _, last = words.rpartition(" ")
    if last in ORDINALS:
        last = ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + " " + last).strip()


def _spell_number(match: re.Match) -> str:
    whole, fraction, suffix = match.group(1), match.group(2), match.group(3)
    if len(whole) > 4 or (len(whole) > 1 and whole.startswith("0")):
        words = " ".join(ONES[int(d)] for d in whole)  # digit strings: phone numbers, codes
    else:
        words = number_to_words(int(whole))
        if suffix:
            words = _ordinal(words)
    if fraction:
        words += " point " + " ".join(ONES[int(d)] for d in fraction)
    return f" {words} "


def normalize_transcript(text: str) -> str:
    """The normal form of a transcript (see the module docstring): "Call 112, now!" -> "call one hundred twelve now"."""
    text = unicodedata.normalize("NFKC", text).lower().translate(_FOLD)
    text = _NUMBER.sub(_spell_number, text)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    words = [w.strip("'") for w in _NOT_LETTER.split(text)]
    return " ".join(w for w in words if w)
