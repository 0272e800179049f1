"""What makes an answer degenerate: a repetition loop, or no sentence at all.

The teacher stage drops repetitive answers with is_repetitive; evaluation counts answers that
loop or hold no sentence as `degenerate`, so that a pass on "a a a a" is not read as adherence.
"""

from __future__ import annotations

import re

# Evaluation's loop rule: the teacher filter's defaults (teacher.filters.repetition_*).
LOOP_NGRAM = 4
LOOP_MAX_FRACTION = 0.5
# A unit of up to 8 characters said 5 or more times in a row, over at least 20 characters:
# "40000000...", "* * * *", "estestest", an emoji run. Word n-grams miss these: digits, symbols
# and word fragments make one long "word" or none at all.
CHARACTER_RUN = re.compile(r"(.{1,8}?)\1{4,}", re.DOTALL)
CHARACTER_RUN_MIN = 20


def words(text: str) -> list[str]:
    """Lowercased runs of word characters (letters, digits, underscore)."""
    return re.findall(r"\w+", text.lower())


def character_run_share(text: str) -> float:
    """The share of the text's characters that lie in runs of a short unit repeated (CHARACTER_RUN)."""
    runs = (len(m.group(0)) for m in CHARACTER_RUN.finditer(text))
    return sum(r for r in runs if r >= CHARACTER_RUN_MIN) / len(text) if text else 0.0


def is_repetitive(text: str, n: int = LOOP_NGRAM, max_fraction: float = LOOP_MAX_FRACTION) -> bool:
    """Stuck in a loop: more than max_fraction of the text's word n-grams repeat an earlier one, or more
    than max_fraction of its characters lie in runs of a short repeated unit ("2000000000...").

    Texts of fewer than 2n word n-grams are too short for the word rule.
    """
    if character_run_share(text) > max_fraction:
        return True
    ws = words(text)
    ngrams = [tuple(ws[i : i + n]) for i in range(len(ws) - n + 1)]
    if len(ngrams) < 2 * n:
        return False
    return 1 - len(set(ngrams)) / len(ngrams) > max_fraction


def has_sentence(text: str) -> bool:
    """Some stretch between sentence ends (. ! ? or a line break) holds at least 2 different words made
    of letters: "Birds sing." is a sentence; "a a a a", "........" and "1, 2, 3" hold none."""
    for piece in re.split(r"[.!?\n]+", text):
        ws = re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", piece.lower())
        if len(set(ws)) >= 2:
            return True
    return False


def is_degenerate(text: str) -> bool:
    return is_repetitive(text) or not has_sentence(text)
