"""Instruction adherence: IFEval-style programmatic checks on a model's answers.

    text       how an answer is read: normalised, markdown removed, words, sentences, paragraphs
    language   the response-language detector
    checks     one function per check type, registered once (`@check`)
    score      strict and loose verdicts of one answer
    file       the adherence file, validated

A prompt passes strictly if every check passes on the raw response, and loosely
if every check passes on at least one of IFEval's loose variants of it (first
or last line dropped, `*` removed), which forgives chatty preambles and markdown.

The checks follow IFEval's verifiable instructions, with verdicts a careful human
grader would sign where IFEval's are too literal. Deliberate differences from IFEval:
- a blank response (no letter or digit at all) fails every check, so an empty
  answer can never pass "no commas" or "at most 40 words" by saying nothing;
- curly and straight quotes both count (`don’t` is `don't`, “...” wraps like "..."),
  as do apostrophe variants (`donʼt`, `don´t`); text is compared in Unicode NFC form,
  invisible marks (zero-width space, soft hyphen, BOM) are removed and Unicode spaces
  are spaces before any check reads it, and a line break inside a phrase is a space;
- markdown emphasis is not part of a word: `*`/`_` at word edges, backticks and
  heading marks are removed before words, sentences and keywords are read
  ("**bold**" is one word), while `snake_case` and `C#` keep their marks;
- words and phrases match whole: "any" is not found in "many", "don" not in "don't";
  "fur" is found in "fur_coat", "fur-lined" and "fur's" (`_`, `-` and a possessive
  join words but do not hide them); "don't", a compound of up to 5 hyphenated parts
  ("state-of-the-art") and a number ("1,000", "3.14") each count as one word (IFEval
  counts each run of letters and digits);
- `keyword_frequency` counts whole words and `section_count` wants exactly `n`
  sections (IFEval counts substrings, and at least `n` sections);
- `choice` passes when the answer gives one option, even if it mentions another
  ("yes, there is no doubt") or drops the option's closing period, and fails when it
  offers two ("yes or no depending on ...", "yes (or no)", "yes; no"); `json` wants an
  object or array (not a bare 42 or "France", nor NaN), bare or in any one code fence;
- sentences do not end at abbreviations (Dr., e.g., Oct. and, No. 3) or initials
  (J. K. Rowling) but do after a one-letter word or a unit (a B. Then, 40 °C. Stay),
  list numbers ("1.") are not sentences, and a closing quote or bracket does not hide an end;
- a postscript starts a line after the body; placeholders, titles, bullets and
  highlights are what a reader would call one (`[1]`, `[x]`, links, `x << 2 >> 1`,
  horizontal rules, lone `-` lines and bullets or `*` inside a fenced code block are not;
  "[name]:" and "[name][date]" are);
- capital words have 2 or more letters ("I" and "A" are ordinary words; "U.S" is one), and
  the response language comes from a small built-in detector (see `detect_language`).
"""

from kdscale.adherence.file import load_adherence
from kdscale.adherence.score import evaluate_response, type_counts

__all__ = ["evaluate_response", "load_adherence", "type_counts"]
