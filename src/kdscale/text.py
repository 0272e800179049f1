"""What makes an answer degenerate: a repetition loop, or no sentence at all.

The teacher stage drops repetitive answers with is_repetitive; evaluation counts answers that
loop or hold no sentence as `degenerate`, so that a pass on "a a a a" is not read as adherence.
"""

from __future__ import annotations

import re

# Evaluation's loop rule: the teacher filter's defaults (teacher.filters.repetition_*).
LOOP_NGRAM = 4
LOOP_MAX_FRACTION = 0.5


def words(text: str) -> list[str]:
    """Lowercased runs of word characters (letters, digits, underscore)."""
    return re.findall(r"\w+", text.lower())


def is_repetitive(text: str, n: int = LOOP_NGRAM, max_fraction: float = LOOP_MAX_FRACTION) -> bool:
    """Stuck in a loop: more than max_fraction of the text's word n-grams repeat an earlier one.

    Texts of fewer than 2n n-grams are too short to call a loop.
    """
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
