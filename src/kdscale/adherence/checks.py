"""The checks: one function per type, `check_<type>(response, **args) -> bool`, registered once by `@check`.

The registry gives each type its required args (the function's parameters after the response) and applies
the rules shared by every type: the response is `clean`ed once (invisible marks removed, Unicode spaces plain),
and a blank response (no letter or digit) fails, so an empty answer can never pass "no commas" or
"at most 40 words" by saying nothing.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from typing import Callable

from kdscale.adherence.language import detect_language
from kdscale.adherence.text import (
    ALNUM, LEAD_CHARS, RULE_RE, TITLE_LINE_RE, TOKEN_RE, WORD_RE, clean, compare, count_words, has_phrase, is_blank,
    marker_pattern, normalize, paragraphs, phrase_pattern, reading_text, split_outside_code, split_sentences,
    starts_with, without_code,
)

CHECKS: dict[str, Callable[..., bool]] = {}
REQUIRED_ARGS: dict[str, set[str]] = {}


def check(fn: Callable[..., bool]) -> Callable[..., bool]:
    """Register `check_<type>` under <type>, with its parameters after the response as required args;
    the registered check reads the `clean`ed response and fails a blank one before the function runs."""
    kind = fn.__name__.removeprefix("check_")

    @functools.wraps(fn)
    def guarded(response: str, **args) -> bool:
        response = clean(response)  # "Section\u200b1" is "Section1" to a reader, and to every check
        return not is_blank(response) and fn(response, **args)

    CHECKS[kind] = guarded
    REQUIRED_ARGS[kind] = set(list(inspect.signature(fn).parameters)[1:])
    return guarded


# a dotted abbreviation (U.S.A., and U.S without its last dot) is one word
CAPITAL_TOKEN_RE = re.compile(r"[^\W\d_](?:\.[^\W\d_])+\.?|" + WORD_RE.pattern)
COMMAS = set(",\u055d\u060c\u07f8\u1363\u1802\u1808\u2e32\u2e34\u2e41\u2e49\u2e4c\u3001\ua4fe\ua60d\ua6f5"
             "\ufe10\ufe11\ufe50\ufe51\uff0c\uff64\U0001144d\U0001145a\U00016e97\U0001da87")
BULLET_RE = re.compile(r"^[ \t]*(?:[*+-][ \t]+|[•‣◦▪][ \t]*)\S", re.MULTILINE)
TITLE_RE = re.compile(r"(?<!<)<<([^<>\n]+)>>(?!>)")
# [text](url) is a link; "[Name](required)" is a placeholder and a note
PLACEHOLDER_RE = re.compile(r"\[([^\[\]\n]*)\](?!\([^()\s]*[/.:#][^()\s]*\))")
BRACKETS_RE = re.compile(r"\[([^\[\]\n]*)\]")
# a markdown link reference definition: "[docs]: https://example.com" at the start of a line
LINK_DEF_RE = re.compile(r"^[ \t]{0,3}\[([^\[\]\n]+)\]:[ \t]*(?:<|https?://|www\.|mailto:|/|#)[^\n]*$", re.MULTILINE)
# one fenced block, ``` or ~~~ of any length, closed by the same fence
JSON_FENCE_RE = re.compile(r"(?P<f>`{3,}|~{3,})[ \t]*(?:json)?[ \t]*\n?(?P<body>.*?)\s*(?P=f)",
                           re.DOTALL | re.IGNORECASE)
TWO_RESPONSES_RE = re.compile(r"(?<!\*)\*{6}(?!\*)")
HIGHLIGHT_RE = re.compile(r"(?<![\w*])(\*{1,3}|_{1,3})(?=[^\s*_])([^\n*_]*?[^\s*_])\1(?![\w*])")


@check
def check_max_words(response, max):
    """At most `max` words."""
    return count_words(response) <= max


@check
def check_min_words(response, min):
    """At least `min` words."""
    return count_words(response) >= min


@check
def check_sentence_count(response, relation, n):
    """Sentence count is at_most / at_least / exactly `n`."""
    return compare(len(split_sentences(response)), relation, n)


@check
def check_lowercase(response):
    """No uppercase letters (and at least one lowercase one)."""
    return response.islower()


@check
def check_uppercase(response):
    """No lowercase letters (and at least one uppercase one)."""
    return response.isupper()


@check
def check_no_commas(response):
    """No commas of any script: ASCII, full-width, Arabic, ideographic, ..."""
    return not any(c in COMMAS for c in response)


@check
def check_end_phrase(response, phrase):
    """Ends with `phrase` as whole words (case-insensitive); closing quotes, markdown and whitespace after it ignored."""
    pattern = phrase_pattern(phrase) + r"[\s\"')\]]*\Z"
    return re.search(pattern, reading_text(response), re.IGNORECASE) is not None


@check
def check_quoted(response):
    """Whole answer is wrapped in double quotes (straight or curly)."""
    text = normalize(response).strip()
    return len(text) >= 2 and text[0] == '"' and text[-1] == '"'


def _not_a_number(name):
    raise ValueError(f"{name} is not JSON")


@check
def check_json(response):
    """Whole answer is a JSON object or array, optionally inside one fenced block (```json, ````, ~~~)."""
    text = response.strip()
    fenced = JSON_FENCE_RE.fullmatch(text)
    if fenced:
        text = fenced.group("body")
    if is_blank(text):  # an empty {} or [] says nothing, fenced or not
        return False
    try:
        value = json.loads(text, parse_constant=_not_a_number)  # NaN and Infinity are not JSON
    except (ValueError, RecursionError):  # RecursionError: deeply nested brackets
        return False
    return isinstance(value, (dict, list))


@check
def check_title(response):
    """Contains a title in double angular brackets, like <<my title>>, with a letter or digit in it."""
    for m in TITLE_RE.finditer(response):
        inner = m.group(1)
        if is_blank(inner):
            continue
        start = response.rfind("\n", 0, m.start()) + 1
        end = response.find("\n", m.end())
        line = response[start:] if end == -1 else response[start:end]
        # "<< x >>" inside a sentence is code or maths (x << 2 >> 1); alone on its line it is a title
        if inner == inner.strip() or TITLE_LINE_RE.fullmatch(line):
            return True
    return False


@check
def check_bullet_count(response, n):
    """Exactly `n` markdown bullets: lines starting with `* `, `- `, `+ ` or `•`; rules and code not counted."""
    lines = [line for line in normalize(without_code(response)).split("\n") if not RULE_RE.match(line)]
    return len(BULLET_RE.findall("\n".join(lines))) == n


@check
def check_postscript(response, marker):
    """A line after the body starts with `marker` (P.S., P. S., > P.S., ## **P.S.**), case-insensitive."""
    text = normalize(response)
    body_starts = re.search(ALNUM, text).start()
    pattern = r"^[ \t]*(?:>[ \t]*)*(?:#{1,6}[ \t]*)?[*_]*" + marker_pattern(marker)
    return any(m.start() > body_starts for m in re.finditer(pattern, text, re.IGNORECASE | re.MULTILINE))


@check
def check_keywords(response, words):
    """Every word in `words` appears as a whole word, case-insensitive."""
    text = reading_text(response)
    return all(has_phrase(text, w) for w in words)


@check
def check_forbidden_words(response, words):
    """None of `words` appears as a whole word, case-insensitive."""
    text = reading_text(response)
    return not any(has_phrase(text, w) for w in words)


def _is_placeholder(inner):
    inner = inner.strip()
    # [name] yes; [1] (a citation), [x] (a checkbox), ["milk"] (JSON), [^1] (a footnote) no
    return len(inner) >= 2 and re.search(r"[^\W\d_]", inner) is not None and inner[0] not in "\"'^"


def _is_link_text(text, m, refs):
    """True if the brackets at `m` are a reference link's text or label: [text][ref] or [ref], where the
    answer defines [ref]: url. Without a definition, "[name][date]" is two placeholders."""
    label = BRACKETS_RE.match(text, m.end())
    return m.group(1).strip().lower() in refs or (label is not None and label.group(1).strip().lower() in refs | {""})


@check
def check_placeholders(response, n):
    """At least `n` square-bracket placeholders like [name] (not links, citations, checkboxes)."""
    refs = {m.group(1).strip().lower() for m in LINK_DEF_RE.finditer(response)}
    text = LINK_DEF_RE.sub("", response)
    found = [m for m in PLACEHOLDER_RE.finditer(text) if not _is_link_text(text, m, refs)]
    return sum(_is_placeholder(m.group(1)) for m in found) >= n


def _opens(text, start):
    """True if text[start:] opens a sentence or line ("Yes, ..." or "My answer is no.", not "there is no doubt")."""
    window = text[max(0, start - 200):start]  # a bounded look back keeps long answers linear
    head = window.rstrip(LEAD_CHARS)
    return not head or head[-1] in ".!?:" or "\n" in window[len(head):]


def _states(text, start, end):
    """True if the option at text[start:end] is given as an answer: it opens a sentence or line, and
    punctuation or the end follows it."""
    closes = not text[end - 1].isalnum() or re.match(r"\s*(?:\Z|[^\w\s])", text[end:end + 50]) is not None
    return _opens(text, start) and closes


@check
def check_choice(response, options):
    """Gives exactly one of `options` (whole phrase, case-insensitive); mentioning another in passing is fine."""
    text = reading_text(response)
    spans = []  # (start, end, option); longer options claim their text first ("not sure" before "sure")
    claimed = bytearray(len(text))
    for i in sorted(range(len(options)), key=lambda i: -len(options[i])):
        # the option's closing punctuation is optional: "My answer is yes, because ..." gives "My answer is yes."
        for m in re.finditer(phrase_pattern(options[i].strip().rstrip(".!?")), text, re.IGNORECASE):
            if claimed.find(1, m.start(), m.end()) == -1:
                spans.append((m.start(), m.end(), i))
                claimed[m.start():m.end()] = b"\x01" * (m.end() - m.start())
    found = {i for _, _, i in spans}
    if len(found) == 1 and not _lists_options(text, spans, options):
        return True
    stated = {i for s, e, i in spans if _states(text, s, e)}
    return len(stated) == 1 and not _lists_options(text, spans, options)


def _option_tails(options):
    """What tells the options apart: each without the words all of them start with
    ("My answer is yes." -> "yes"), or whole where that leaves nothing."""
    words = [o.strip().rstrip(".!?").split() for o in options]
    common = 0
    while all(len(w) > common + 1 and w[common].lower() == words[0][common].lower() for w in words):
        common += 1
    return [" ".join(w[common:]) for w in words]


# what joins two options that an answer offers rather than chooses between: an either-or word or mark
# ("yes or no", "yes (or no)", "Yes. Or no.", "yes & no", "yes/no"; "and" only with no comma before it) ...
EITHER = r"(?:[\s\"'(]*(?:and|&)|[\s\"',;.!?…(\-–—]*(?:or|nor|and/or|/|\||vs\.?|versus))[\s\"'(]*"
# ... or a list mark, when the second option ends a phrase or a condition follows it ("yes, no", "yes; no.",
# "yes - no", "yes, and no", "No; yes if pressed"), unlike "Yes; no one asked"
LISTED = r"[\s\"',;/&|+()\-–—]*(?:(?:or|and|nor)\s+)?"
LISTED_END = (r"\s*(?:\Z|[^\w\s]|(?:or|and|if|unless|when|depending|because|but|though|although|otherwise|maybe|"
              r"perhaps|probably)\b)")


def _lists_options(text, spans, options):
    """True if a found option runs straight on into another: the answer offers options rather than choosing
    one. After an option that opens the answer an either-or joiner does it whatever follows ("My answer is yes
    or no depending on the weather", "yes (or no)"); any other joiner when the second option ends a phrase or a
    condition follows it ("yes; no", "No, yes if pressed", but not "Yes, and no one doubts it", "a yes or no
    question")."""
    tails = _option_tails(options)
    for start, end, i in spans:
        others = "|".join(phrase_pattern(t) for j, t in enumerate(tails) if j != i)
        if not others:
            continue
        after = text[end:end + 200]
        if re.match(rf"{LISTED}(?:{others}){LISTED_END}", after, re.IGNORECASE):
            return True
        if _opens(text, start) and re.match(rf"{EITHER}(?:{others})", after, re.IGNORECASE):
            return True
    return False


@check
def check_start_word(response, word):
    """The first word (markdown and quotes ignored) is `word`, case-insensitive."""
    return starts_with(response, word)


@check
def check_keyword_frequency(response, word, relation, n):
    """`word` appears as a whole word at_most / at_least / exactly `n` times, case-insensitive."""
    count = len(re.findall(phrase_pattern(word), reading_text(response), re.IGNORECASE))
    return compare(count, relation, n)


@check
def check_letter_frequency(response, letter, relation, n):
    """The letter `letter` appears at_most / at_least / exactly `n` times, case-insensitive."""
    return compare(normalize(response).lower().count(letter.lower()), relation, n)


@check
def check_paragraph_count(response, n, separator):
    """Exactly `n` paragraphs, separated by `***` dividers or by blank lines."""
    found = paragraphs(response, separator)
    return found is not None and len(found) == n


@check
def check_paragraph_first_word(response, n, nth, word):
    """Exactly `n` paragraphs separated by blank lines, and the `nth` one starts with `word`."""
    found = paragraphs(response, "blank_line")
    return len(found) == n and starts_with(found[nth - 1], word)


@check
def check_highlighted_sections(response, n):
    """At least `n` sections highlighted with markdown, like *this*, **this** or _this_ (not in code blocks)."""
    return sum(not is_blank(m.group(2)) for m in HIGHLIGHT_RE.finditer(without_code(response))) >= n


@check
def check_section_count(response, marker, n):
    """Exactly `n` sections, each opened by `marker` and a number at the start of a line or sentence (SECTION 1)."""
    words = r"\s+".join(re.escape(w) for w in normalize(marker).split())
    # "## **Section 2**" or "...done. SECTION 2" open a section; "see section 2" in a sentence does not
    pattern = r"(?:^[ \t]*|(?<=[.!?:])[ \t]+)(?:#{1,6}[ \t]*)?[*_]*" + words + r"[ \t]*\d+(?!\d)"
    return len(re.findall(pattern, normalize(response), re.IGNORECASE | re.MULTILINE)) == n


@check
def check_repeat_prompt(response, prompt):
    """Starts by repeating `prompt` word for word (case, punctuation and markdown ignored)."""
    want = [w.lower() for w in TOKEN_RE.findall(reading_text(prompt))]  # "well known" repeats "well-known"
    got = []
    for m in TOKEN_RE.finditer(reading_text(response)):
        if len(got) == len(want):
            break
        got.append(m.group(0).lower())
    return got == want


@check
def check_two_responses(response):
    """Two different answers separated by a line of six asterisks (******)."""
    pieces = split_outside_code(TWO_RESPONSES_RE, response)
    if any(is_blank(p) for p in pieces[1:-1]):
        return False
    answers = [" ".join(reading_text(p).lower().split()) for p in pieces if not is_blank(p)]
    return len(answers) == 2 and answers[0] != answers[1]


def _is_capital_word(word):
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and word.isupper()  # "I" and "A" are ordinary words


@check
def check_capital_word_frequency(response, relation, n):
    """Words in all capital letters (2+ letters) appear at_most / at_least / exactly `n` times."""
    count = sum(_is_capital_word(w) for w in CAPITAL_TOKEN_RE.findall(reading_text(response)))
    return compare(count, relation, n)


@check
def check_response_language(response, language):
    """The whole answer is in `language` (ISO 639-1 code), by the built-in `detect_language`."""
    return detect_language(response) == language
