"""Instruction adherence: IFEval-style programmatic checks on a student's answers.

Each check type is one plain function `check_<type>(response, **args) -> bool`.
A prompt passes strictly if every check passes on the raw response, and loosely
if every check passes on at least one of IFEval's loose variants of it (first
or last line dropped, `*` removed), which forgives chatty preambles and markdown.

The checks follow IFEval's verifiable instructions, with verdicts a careful human
grader would sign where IFEval's are too literal. Deliberate differences from IFEval:
- a blank response (no letter or digit at all) fails every check, so an empty
  answer can never pass "no commas" or "at most 40 words" by saying nothing;
- curly and straight quotes both count (`don’t` is `don't`, “...” wraps like "..."),
  text is compared in Unicode NFC form, and a line break inside a phrase is a space;
- markdown emphasis is not part of a word: `*`/`_` at word edges, backticks and
  heading marks are removed before words, sentences and keywords are read
  ("**bold**" is one word), while `snake_case` and `C#` keep their marks;
- words and phrases match whole: "any" is not found in "many", "don" not in "don't";
  "fur" is found in "fur_coat", "fur-lined" and "fur's" (`_`, `-` and a possessive
  join words but do not hide them); "don't" counts as one word;
- `keyword_frequency` counts whole words and `section_count` wants exactly `n`
  sections (IFEval counts substrings, and at least `n` sections);
- `choice` passes when the answer gives one option, even if it mentions another
  ("yes, there is no doubt") or drops the option's closing period; `json` wants an
  object or array (not a bare 42 or "France", nor NaN), as the prompts ask;
- sentences do not end at abbreviations (Dr., e.g., Oct. and), list numbers
  ("1.") are not sentences, and a closing quote or bracket does not hide an end;
- a postscript starts a line after the body; placeholders, titles, bullets and
  highlights are what a reader would call one (`[1]`, `[x]`, links, `x << 2 >> 1`,
  horizontal rules and lone `-` lines are not);
- capital words have 2 or more letters ("I" and "A" are ordinary words), and
  the response language comes from a small built-in detector (see `detect_language`).
"""

import difflib
import json
import re
import unicodedata
from importlib import resources
from pathlib import Path

from kdscale.errors import UserError
from kdscale.jsonl import iter_jsonl

WORD_RE = re.compile(r"\w+(?:['’]\w+)*")
CAPITAL_TOKEN_RE = re.compile(r"(?:[^\W\d_]\.){2,}|\w+(?:['’]\w+)*")  # a dotted abbreviation (U.S.A.) is one word
ALNUM = r"[^\W_]"  # a letter or digit
# phrase edges: no letter/digit (or an apostrophe inside a word) right outside the phrase
BEFORE = rf"(?<!{ALNUM})(?<!{ALNUM}')"
AFTER = rf"(?!{ALNUM})(?!'(?!s\b){ALNUM})"  # "wolf's" has the word wolf; "don't" has no "don"
EMPHASIS_RE = re.compile(rf"(?<!{ALNUM})[*_]+|[*_]+(?!{ALNUM})")  # only at word edges
HEADING_RE = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE)
QUOTES = str.maketrans({"’": "'", "‘": "'", "‛": "'", "“": '"', "”": '"', "„": '"', "‟": '"',
                        "\u2010": "-", "\u2011": "-",  # and Unicode hyphens, so "well‑known" is "well-known"
                        # and Unicode spaces, so "SECTION\u00a01" (a no-break space) opens a section
                        **{c: " " for c in "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
                                           "\u2008\u2009\u200a\u202f\u205f\u3000"}})
# every Unicode punctuation mark named COMMA (ASCII, Arabic ،, ideographic 、, full-width ，, ...)
COMMAS = set(",\u055d\u060c\u07f8\u1363\u1802\u1808\u2e32\u2e34\u2e41\u2e49\u2e4c\u3001\ua4fe\ua60d\ua6f5"
             "\ufe10\ufe11\ufe50\ufe51\uff0c\uff64\U0001144d\U0001145a\U00016e97\U0001da87")
BULLET_RE = re.compile(r"^[ \t]*(?:[*+-][ \t]+|[•‣◦▪][ \t]*)\S", re.MULTILINE)
RULE_RE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # a markdown horizontal rule: *** or - - -
TITLE_RE = re.compile(r"(?<!<)<<([^<>\n]+)>>(?!>)")
PLACEHOLDER_RE = re.compile(r"\[([^\[\]\n]*)\](?![(\[:])")
JSON_FENCE_RE = re.compile(r"```(?:json)?[ \t]*\n?(.*?)\s*```", re.DOTALL | re.IGNORECASE)
LIST_MARK_RE = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:[-*+•‣◦▪]|\(?\d{1,3}[.)]|[a-z][.)])[ \t]+")
STAR_DIVIDER_RE = re.compile(r"^[ \t]*\*[ \t]+\*[ \t]+\*[ \t]*$|(?<!\S)\*{3,}(?!\S)", re.MULTILINE)
BLANK_LINE_RE = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")  # one or more blank lines, \r\n too
TWO_RESPONSES_RE = re.compile(r"(?<!\*)\*{6}(?!\*)")
HIGHLIGHT_RE = re.compile(r"(?<![\w*])(\*{1,3}|_{1,3})(?=[^\s*_])([^\n*_]*?[^\s*_])\1(?![\w*])")
SENTENCE_END_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")  # read after _norm: quotes are straight
# words whose final "." is not a sentence end: titles before a name, and Latin abbreviations
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "capt", "lt", "col", "gen", "gov",
                 "sen", "rev", "fr", "hon", "vs", "e.g", "i.e", "cf", "viz", "approx", "incl", "fig"}
LEAD_CHARS = " \t\n\"'([>*_#-"  # what may stand between a sentence start and its first word
TITLE_LINE_RE = re.compile(r"[#*_\s]*<<[^<>\n]+>>[*_\s]*")
ENUMERATOR_RE = re.compile(r"\(?\d{1,3}[.)]|[a-z][.)]")
RELATIONS = ("at_most", "at_least", "exactly")
SEPARATORS = ("***", "blank_line")


# -----------------------------------------------------------------------------
# text helpers

def _blank(text):
    """True if the text has no letter or digit; such answers fail every check."""
    return re.search(ALNUM, text) is None


def _norm(text):
    """NFC form with curly quotes made straight and Unicode spaces plain, so `don’t` and an NFD `café`
    match their usual spelling."""
    return unicodedata.normalize("NFC", text).translate(QUOTES)


def _plain(text):
    """The text with markdown emphasis at word edges, code ticks and heading marks removed."""
    return EMPHASIS_RE.sub("", HEADING_RE.sub("", text).replace("`", ""))


def _text(response):
    """What word, keyword and phrase checks read: normalized, markdown removed."""
    return _plain(_norm(response))


def count_words(text):
    """Number of words (`\\w+` runs, apostrophes inside a word kept) after markdown is removed."""
    return len(WORD_RE.findall(_text(text)))


def _phrase_pattern(phrase):
    """A whole-word, whitespace-tolerant pattern for a keyword or phrase (quotes and markdown as in `_text`)."""
    words = _text(phrase).split()
    return BEFORE + r"\s+".join(re.escape(w) for w in words) + AFTER


def _has_phrase(text, phrase):
    """Case-insensitive whole-word search of an already `_text`-ed text."""
    return re.search(_phrase_pattern(phrase), text, re.IGNORECASE) is not None


def _compare(count, relation, n):
    if relation == "at_most":
        return count <= n
    if relation == "at_least":
        return count >= n
    if relation == "exactly":
        return count == n
    raise ValueError(f"unknown relation {relation!r}")


def _blocks(text):
    """Runs of prose: paragraphs split at blank lines, one block per list item; headings, <<title>> lines and rules dropped."""
    blocks, current = [], []
    for line in _norm(text).split("\n"):
        if not line.strip() or HEADING_RE.match(line) or TITLE_LINE_RE.fullmatch(line) or RULE_RE.match(line):
            blocks.append(current)
            current = []
            continue
        item = LIST_MARK_RE.match(line)
        if item:
            blocks.append(current)
            current = [line[item.end():]]
        else:
            current.append(line)
    blocks.append(current)
    return [_plain(" ".join(b)) for b in blocks if b]


def _ends_sentence(before, mark, after, cased):
    """Whether `mark` (. ! ? with closing quotes) ends a sentence, given the text before and after it."""
    first = after.lstrip("\"'([*_")[:1]
    if cased and first.islower():  # "in Oct. and fall", `"Stop!" he said`
        return False
    if mark[0] == "." and not mark.startswith(".."):
        word = re.search(r"[\w.]*$", before).group(0)
        if word.lower() in ABBREVIATIONS:  # Dr. Smith, e.g. Paris
            return False
        if re.fullmatch(r"[A-HJ-Z]", word) and first.isupper():  # the initials of J. K. Rowling
            return False
    return True


def split_sentences(text):
    """Sentences: split after . ! ? (and any closing quote or bracket) followed by whitespace,
    but not after abbreviations or before a lowercase word in capitalized text; blocks (paragraphs,
    list items) end sentences; list numbers and pieces with no letter/digit are dropped."""
    first_letter = re.search(r"[^\W\d_]", text)
    cased = first_letter is not None and first_letter.group(0).isupper()
    sentences = []
    for block in _blocks(text):
        start = 0
        for m in SENTENCE_END_RE.finditer(block):
            after = block[m.end():m.end() + 40].lstrip()
            before = block[max(start, m.start() - 40):m.start()]  # the last word is enough; keeps this linear
            if after and not _ends_sentence(before, m.group(0), after, cased):
                continue
            sentences.append(block[start:m.end()].strip())
            start = m.end()
        sentences.append(block[start:].strip())
    return [s for s in sentences if not _blank(s) and not ENUMERATOR_RE.fullmatch(s)]


def _paragraphs(response, separator):
    """Paragraphs split at `***` dividers or at blank lines; None when two `***` have nothing between them."""
    if separator == "***":
        pieces = STAR_DIVIDER_RE.split(response)
        inner = pieces[1:-1]
        if any(_blank(p) for p in inner):
            return None
        return [p for p in pieces if not _blank(p)]
    return [p for p in BLANK_LINE_RE.split(response) if not _blank(p)]


def _first_word(text):
    m = WORD_RE.search(_text(text))
    return m.group(0).lower() if m else None


def _starts_with(text, word):
    """The first word is `word`, or its possessive ("Summer's" starts with summer)."""
    word = _norm(word).strip().lower()
    return _first_word(text) in (word, word + "'s")


def _marker_pattern(marker):
    """P.S. and P.P.S., however spaced (P. P. S., P .S.) and with the last dot optional (P.S), whether
    the instruction writes them P.P.S, P. P. S. or P.P.S.; other markers as written."""
    marker = _norm(marker).strip()
    if "." in marker and re.fullmatch(r"(?:[^\W\d_][\s.]*){2,}", marker):
        body = r"[ \t]*\.[ \t]*".join(re.findall(r"[^\W\d_]", marker)) + rf"[ \t]*\.?(?!\.?{ALNUM})"  # not P.S.A.
    else:
        body = r"\s+".join(re.escape(w) for w in marker.split())
    return body + AFTER


# -----------------------------------------------------------------------------
# the response language: a small built-in detector, no dependency

# Unicode blocks of scripts that one supported language owns here (Cyrillic is read as Russian)
SCRIPTS = [
    ("ru", 0x0400, 0x04FF), ("el", 0x0370, 0x03FF), ("he", 0x0590, 0x05FF), ("ar", 0x0600, 0x06FF),
    ("hi", 0x0900, 0x097F), ("th", 0x0E00, 0x0E7F), ("ko", 0x1100, 0x11FF), ("ko", 0xAC00, 0xD7AF),
    ("ja", 0x3040, 0x30FF), ("zh", 0x4E00, 0x9FFF),
]
# the commonest short words of each Latin-script language; a text is the language with the most hits
STOP_WORDS = {
    "en": ("the and is are of to in it that this with for was you have not be on they what which can "
           "will from your my we he she so should at as but or if an has had were been their there would today hello thanks yes am").split(),
    "es": ("el la los las de que y en un una es por con para no se su al lo "
           "como más pero del muy está son también yo tiene hay este esta porque cuando sobre entre ya todo así hace hoy hola gracias sí estoy soy mi").split(),
    "fr": ("le la les de des et est un une du que qui en dans pour pas sur avec ce il "
           "elle nous vous je sont au mais très ne aux ces cette été ont donc leur ou mon ma mes fait c'est j'ai aujourd'hui bonjour merci oui").split(),
    "de": ("der die das und ist nicht ein eine zu den mit sich auf für von dem im es auch sie "
           "ich wir sind wird aber oder bei nach um also einen einem dass wenn noch nur schon war hat haben heute hallo danke ja nein mein").split(),
    "it": ("il la le di che e è un una per non con sono del della gli lo si nel anche ma "
           "più questo come io molto alla alle allo ai agli dei delle degli nella sul quindi perché ci ho ha hanno essere oggi ciao grazie sì fa mio").split(),
    "pt": ("o a os as de que e do da em um uma é não para com se no na por "
           "mais mas dos das ao muito também eu você são às então foi tem ser seu sua nos pelo pela hoje olá obrigado sim meu").split(),
    "nl": ("de het een en van is dat niet op te zijn met voor ik je die er maar "
           "ook wat hij we naar bij dit om dus worden heeft hebben nog al als ze aan uit over vandaag hallo dank nee mijn").split(),
}
STOP_SETS = {lang: set(words) for lang, words in STOP_WORDS.items()}
# letters only one of them uses, each worth one stop word (short answers may have no stop word at all)
LETTERS = {"es": set("ñ¿¡"), "pt": set("ãõ"), "de": set("ßäöü"), "fr": set("œîû")}
LANGUAGES = sorted(set(STOP_WORDS) | {lang for lang, _, _ in SCRIPTS})


def detect_language(text):
    """ISO 639-1 code of the text's language, or None when unsure.

    The script with the most letters decides (Cyrillic -> ru, Han with kana -> ja, Han alone -> zh, ...);
    Latin-script text is the language whose stop words (STOP_WORDS) and own letters (LETTERS, like ñ or ß)
    it uses most, None on a tie or no hit.
    """
    counts = {}
    for ch in _norm(text):
        if not ch.isalpha():
            continue
        code = ord(ch)
        script = "latin" if code < 0x0370 else next((lang for lang, lo, hi in SCRIPTS if lo <= code <= hi), "other")
        counts[script] = counts.get(script, 0) + 1
    if not counts:
        return None
    kana = counts.pop("ja", 0)
    if kana:  # Japanese mixes kana with Han; Chinese has no kana
        counts["ja"] = counts.pop("zh", 0) + kana
    script = max(counts, key=counts.get)
    if script != "latin":
        return None if script == "other" else script
    scores = dict.fromkeys(STOP_SETS, 0)
    for ch in _norm(text[:20_000]).lower():
        for lang, letters in LETTERS.items():
            scores[lang] += ch in letters
    for i, m in enumerate(WORD_RE.finditer(_norm(text).lower())):
        if i >= 5000:
            break
        for lang, words in STOP_SETS.items():
            scores[lang] += m.group(0) in words
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return None
    return max(scores, key=scores.get)


# -----------------------------------------------------------------------------
# the checks: one function per type, argument names match the adherence file

def check_max_words(response, max):
    """At most `max` words."""
    return not _blank(response) and count_words(response) <= max


def check_min_words(response, min):
    """At least `min` words."""
    return not _blank(response) and count_words(response) >= min


def check_sentence_count(response, relation, n):
    """Sentence count is at_most / at_least / exactly `n`."""
    return not _blank(response) and _compare(len(split_sentences(response)), relation, n)


def check_lowercase(response):
    """No uppercase letters (and at least one lowercase one)."""
    return not _blank(response) and response.islower()


def check_uppercase(response):
    """No lowercase letters (and at least one uppercase one)."""
    return not _blank(response) and response.isupper()


def check_no_commas(response):
    """No commas of any script: ASCII, full-width, Arabic, ideographic, ..."""
    return not _blank(response) and not any(c in COMMAS for c in response)


def check_end_phrase(response, phrase):
    """Ends with `phrase` as whole words (case-insensitive); closing quotes, markdown and whitespace after it ignored."""
    if _blank(response):
        return False
    pattern = _phrase_pattern(phrase) + r"[\s\"')\]]*\Z"
    return re.search(pattern, _text(response), re.IGNORECASE) is not None


def check_quoted(response):
    """Whole answer is wrapped in double quotes (straight or curly)."""
    text = _norm(response).strip()
    return not _blank(text) and len(text) >= 2 and text[0] == '"' and text[-1] == '"'


def _not_a_number(name):
    raise ValueError(f"{name} is not JSON")


def check_json(response):
    """Whole answer is a JSON object or array, optionally inside one ```json fenced block."""
    if _blank(response):
        return False
    text = response.strip()
    fenced = JSON_FENCE_RE.fullmatch(text)
    if fenced:
        text = fenced.group(1)
    if _blank(text):  # an empty {} or [] says nothing, fenced or not
        return False
    try:
        value = json.loads(text, parse_constant=_not_a_number)  # NaN and Infinity are not JSON
    except (ValueError, RecursionError):  # RecursionError: deeply nested brackets
        return False
    return isinstance(value, (dict, list))


def check_title(response):
    """Contains a title in double angular brackets, like <<my title>>, with a letter or digit in it."""
    if _blank(response):
        return False
    for m in TITLE_RE.finditer(response):
        inner = m.group(1)
        if _blank(inner):
            continue
        start = response.rfind("\n", 0, m.start()) + 1
        end = response.find("\n", m.end())
        line = response[start:] if end == -1 else response[start:end]
        # "<< x >>" inside a sentence is code or maths (x << 2 >> 1); alone on its line it is a title
        if inner == inner.strip() or TITLE_LINE_RE.fullmatch(line):
            return True
    return False


def check_bullet_count(response, n):
    """Exactly `n` markdown bullets: lines starting with `* `, `- `, `+ ` or `•`, horizontal rules not counted."""
    if _blank(response):
        return False
    lines = [line for line in _norm(response).split("\n") if not RULE_RE.match(line)]
    return len(BULLET_RE.findall("\n".join(lines))) == n


def check_postscript(response, marker):
    """A line after the body starts with `marker` (P.S., P. S., > P.S., ## **P.S.**), case-insensitive."""
    if _blank(response):
        return False
    text = _norm(response)
    body_starts = re.search(ALNUM, text).start()
    pattern = r"^[ \t]*(?:>[ \t]*)*(?:#{1,6}[ \t]*)?[*_]*" + _marker_pattern(marker)
    return any(m.start() > body_starts for m in re.finditer(pattern, text, re.IGNORECASE | re.MULTILINE))


def check_keywords(response, words):
    """Every word in `words` appears as a whole word, case-insensitive."""
    if _blank(response):
        return False
    text = _text(response)
    return all(_has_phrase(text, w) for w in words)


def check_forbidden_words(response, words):
    """None of `words` appears as a whole word, case-insensitive."""
    if _blank(response):
        return False
    text = _text(response)
    return not any(_has_phrase(text, w) for w in words)


def _is_placeholder(inner):
    inner = inner.strip()
    # [name] yes; [1] (a citation), [x] (a checkbox), ["milk"] (JSON), [^1] (a footnote) no
    return len(inner) >= 2 and re.search(r"[^\W\d_]", inner) is not None and inner[0] not in "\"'^"


def check_placeholders(response, n):
    """At least `n` square-bracket placeholders like [name] (not links, citations, checkboxes)."""
    if _blank(response):
        return False
    return sum(_is_placeholder(m.group(1)) for m in PLACEHOLDER_RE.finditer(response)) >= n


def _states(text, start, end):
    """True if the option at text[start:end] is given as an answer: it opens a sentence or line, and
    punctuation or the end follows it ("Yes, ..." or "My answer is no." but not "there is no doubt")."""
    window = text[max(0, start - 200):start]  # a bounded look back keeps long answers linear
    head = window.rstrip(LEAD_CHARS)
    opens = not head or head[-1] in ".!?:" or "\n" in window[len(head):]
    closes = not text[end - 1].isalnum() or re.match(r"\s*(?:\Z|[^\w\s])", text[end:end + 50]) is not None
    return opens and closes


def check_choice(response, options):
    """Gives exactly one of `options` (whole phrase, case-insensitive); mentioning another in passing is fine."""
    if _blank(response):
        return False
    text = _text(response)
    spans = []  # (start, end, option); longer options claim their text first ("not sure" before "sure")
    claimed = bytearray(len(text))
    for i in sorted(range(len(options)), key=lambda i: -len(options[i])):
        # the option's closing punctuation is optional: "My answer is yes, because ..." gives "My answer is yes."
        for m in re.finditer(_phrase_pattern(options[i].strip().rstrip(".!?")), text, re.IGNORECASE):
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


def _lists_options(text, spans, options):
    """True if a found option runs straight on into another ("yes or no", "Yes/no", "My answer is yes,
    no"): the answer offers options rather than choosing one."""
    tails = _option_tails(options)
    for _, end, i in spans:
        others = "|".join(_phrase_pattern(t) for j, t in enumerate(tails) if j != i)
        if others and re.match(rf"[\s,/]*(?:(?:or|and|nor)\s+)?(?:{others})\s*(?:\Z|[^\w\s]|(?:or|and)\b)",
                               text[end:end + 200], re.IGNORECASE):
            return True
    return False


def check_start_word(response, word):
    """The first word (markdown and quotes ignored) is `word`, case-insensitive."""
    return not _blank(response) and _starts_with(response, word)


def check_keyword_frequency(response, word, relation, n):
    """`word` appears as a whole word at_most / at_least / exactly `n` times, case-insensitive."""
    if _blank(response):
        return False
    count = len(re.findall(_phrase_pattern(word), _text(response), re.IGNORECASE))
    return _compare(count, relation, n)


def check_letter_frequency(response, letter, relation, n):
    """The letter `letter` appears at_most / at_least / exactly `n` times, case-insensitive."""
    if _blank(response):
        return False
    return _compare(_norm(response).lower().count(letter.lower()), relation, n)


def check_paragraph_count(response, n, separator):
    """Exactly `n` paragraphs, separated by `***` dividers or by blank lines."""
    if _blank(response):
        return False
    paragraphs = _paragraphs(response, separator)
    return paragraphs is not None and len(paragraphs) == n


def check_paragraph_first_word(response, n, nth, word):
    """Exactly `n` paragraphs separated by blank lines, and the `nth` one starts with `word`."""
    if _blank(response):
        return False
    paragraphs = _paragraphs(response, "blank_line")
    return len(paragraphs) == n and _starts_with(paragraphs[nth - 1], word)


def check_highlighted_sections(response, n):
    """At least `n` sections highlighted with markdown, like *this*, **this** or _this_."""
    if _blank(response):
        return False
    return sum(not _blank(m.group(2)) for m in HIGHLIGHT_RE.finditer(response)) >= n


def check_section_count(response, marker, n):
    """Exactly `n` sections, each opened by `marker` and a number at the start of a line or sentence (SECTION 1)."""
    if _blank(response):
        return False
    words = r"\s+".join(re.escape(w) for w in _norm(marker).split())
    # "## **Section 2**" or "...done. SECTION 2" open a section; "see section 2" in a sentence does not
    pattern = r"(?:^[ \t]*|(?<=[.!?:])[ \t]+)(?:#{1,6}[ \t]*)?[*_]*" + words + r"[ \t]*\d+(?!\d)"
    return len(re.findall(pattern, _norm(response), re.IGNORECASE | re.MULTILINE)) == n


def check_repeat_prompt(response, prompt):
    """Starts by repeating `prompt` word for word (case, punctuation and markdown ignored)."""
    if _blank(response):
        return False
    want = [w.lower() for w in WORD_RE.findall(_text(prompt))]
    got = []
    for m in WORD_RE.finditer(_text(response)):
        if len(got) == len(want):
            break
        got.append(m.group(0).lower())
    return got == want


def check_two_responses(response):
    """Two different answers separated by a line of six asterisks (******)."""
    if _blank(response):
        return False
    pieces = TWO_RESPONSES_RE.split(response)
    if any(_blank(p) for p in pieces[1:-1]):
        return False
    answers = [" ".join(_text(p).lower().split()) for p in pieces if not _blank(p)]
    return len(answers) == 2 and answers[0] != answers[1]


def _is_capital_word(word):
    letters = [c for c in word if c.isalpha()]
    return len(letters) >= 2 and word.isupper()  # "I" and "A" are ordinary words


def check_capital_word_frequency(response, relation, n):
    """Words in all capital letters (2+ letters) appear at_most / at_least / exactly `n` times."""
    if _blank(response):
        return False
    count = sum(_is_capital_word(w) for w in CAPITAL_TOKEN_RE.findall(_text(response)))
    return _compare(count, relation, n)


def check_response_language(response, language):
    """The whole answer is in `language` (ISO 639-1 code), by the built-in `detect_language`."""
    return not _blank(response) and detect_language(response) == language


CHECKS = {
    "max_words": check_max_words,
    "min_words": check_min_words,
    "sentence_count": check_sentence_count,
    "lowercase": check_lowercase,
    "uppercase": check_uppercase,
    "no_commas": check_no_commas,
    "end_phrase": check_end_phrase,
    "quoted": check_quoted,
    "json": check_json,
    "title": check_title,
    "bullet_count": check_bullet_count,
    "postscript": check_postscript,
    "keywords": check_keywords,
    "forbidden_words": check_forbidden_words,
    "placeholders": check_placeholders,
    "choice": check_choice,
    "start_word": check_start_word,
    "keyword_frequency": check_keyword_frequency,
    "letter_frequency": check_letter_frequency,
    "paragraph_count": check_paragraph_count,
    "paragraph_first_word": check_paragraph_first_word,
    "highlighted_sections": check_highlighted_sections,
    "section_count": check_section_count,
    "repeat_prompt": check_repeat_prompt,
    "two_responses": check_two_responses,
    "capital_word_frequency": check_capital_word_frequency,
    "response_language": check_response_language,
}

REQUIRED_ARGS = {
    "max_words": {"max"},
    "min_words": {"min"},
    "sentence_count": {"relation", "n"},
    "lowercase": set(),
    "uppercase": set(),
    "no_commas": set(),
    "end_phrase": {"phrase"},
    "quoted": set(),
    "json": set(),
    "title": set(),
    "bullet_count": {"n"},
    "postscript": {"marker"},
    "keywords": {"words"},
    "forbidden_words": {"words"},
    "placeholders": {"n"},
    "choice": {"options"},
    "start_word": {"word"},
    "keyword_frequency": {"word", "relation", "n"},
    "letter_frequency": {"letter", "relation", "n"},
    "paragraph_count": {"n", "separator"},
    "paragraph_first_word": {"n", "nth", "word"},
    "highlighted_sections": {"n"},
    "section_count": {"marker", "n"},
    "repeat_prompt": {"prompt"},
    "two_responses": set(),
    "capital_word_frequency": {"relation", "n"},
    "response_language": {"language"},
}


# -----------------------------------------------------------------------------
# scoring

def loose_variants(response):
    """IFEval's loose variants: drop first line / last line / both, each also with `*` removed."""
    lines = response.split("\n")
    base = [
        response,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    variants = base + [v.replace("*", "") for v in base]
    return list(dict.fromkeys(variants))  # dedupe, keep order


def _run_check(check, response):
    args = {k: v for k, v in check.items() if k != "type"}
    return CHECKS[check["type"]](response, **args)


def evaluate_response(checks, response):
    """Score one response against a prompt's checks, strictly and loosely."""
    variants = loose_variants(response)
    results = []
    for check in checks:
        strict = _run_check(check, response)
        # the raw response is variants[0], so strict implies loose
        loose = strict or any(_run_check(check, v) for v in variants[1:])
        results.append({"type": check["type"], "strict": strict, "loose": loose})
    return {
        "strict": all(r["strict"] for r in results),
        "loose": all(r["loose"] for r in results),
        "checks": results,
    }


def type_counts(prompts):
    """How many prompts use each check type (a prompt with two checks of one type counts once)."""
    counts = {}
    for prompt in prompts:
        for kind in dict.fromkeys(c["type"] for c in prompt["checks"]):
            counts[kind] = counts.get(kind, 0) + 1
    return counts


# -----------------------------------------------------------------------------
# the adherence file

RECORD_KEYS = {"id", "instruction", "input", "checks"}


def _is_pos_int(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def _is_text(v):
    return isinstance(v, str) and v.strip() != ""


def _is_text_list(v, min_len):
    return isinstance(v, list) and len(v) >= min_len and all(_is_text(x) for x in v)


def _is_keyword(v):
    # the answer is read with markdown edges removed, so a keyword that has them could never match
    return _is_text(v) and not _blank(v) and _plain(v).strip() == v.strip()


def _is_options(v):
    return (isinstance(v, list) and len(v) >= 2 and all(_is_keyword(x) for x in v)
            and len({_norm(x).strip().lower() for x in v}) == len(v))


# what each argument must look like, keyed by argument name (names mean the same in every type)
ARG_RULES = {
    "max": (_is_pos_int, "a positive integer"),
    "min": (_is_pos_int, "a positive integer"),
    "n": (_is_pos_int, "a positive integer"),
    "nth": (_is_pos_int, "a positive integer"),
    "relation": (lambda v: v in RELATIONS, 'one of "at_most", "at_least", "exactly"'),
    "phrase": (lambda v: _is_text(v) and not _blank(v), "a non-empty string with a letter or digit"),
    "marker": (lambda v: _is_text(v) and not _blank(v), "a non-empty string with a letter or digit"),
    "prompt": (lambda v: _is_text(v) and not _blank(v), "the part of the instruction to repeat"),
    "words": (lambda v: isinstance(v, list) and len(v) >= 1 and all(_is_keyword(x) for x in v),
              "a non-empty list of words or phrases, each with a letter or digit and no markdown (* _ `) at its edges"),
    "options": (_is_options, "a list of at least 2 distinct options (ignoring case), each with a letter or digit "
                             "and no markdown (* _ `) at its edges"),
    "word": (lambda v: isinstance(v, str) and WORD_RE.fullmatch(v.strip()) is not None and _is_keyword(v),
             "a single word with no markdown (* _ `) at its edges"),
    "letter": (lambda v: isinstance(v, str) and len(v) == 1 and v.isalpha(), 'a single letter like "e"'),
    "separator": (lambda v: v in SEPARATORS, 'one of "***", "blank_line"'),
    "language": (lambda v: v in LANGUAGES, f"one of the ISO 639-1 codes {', '.join(LANGUAGES)}"),
}


def _validate_check(where, i, check):
    """Raise UserError unless `check` is a known type with exactly its required, well-formed args."""
    at = f"{where}: checks[{i}]"
    if not isinstance(check, dict) or "type" not in check:
        raise UserError(f'{at} must be an object with a "type" key, e.g. {{"type": "lowercase"}}')
    kind = check["type"]
    if kind not in CHECKS:
        close = difflib.get_close_matches(str(kind), list(CHECKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"{where}: unknown check type {kind!r}{hint}; known types: {', '.join(sorted(CHECKS))}")
    required = REQUIRED_ARGS[kind]
    given = set(check) - {"type"}
    takes = ", ".join(sorted(required)) if required else "no args"
    missing, extra = sorted(required - given), sorted(given - required)
    if missing:
        raise UserError(f"{at}: check {kind!r} is missing arg {missing[0]!r}; it takes: {takes}")
    if extra:
        raise UserError(f"{at}: check {kind!r} got unexpected arg {extra[0]!r}; it takes: {takes}")
    for name in sorted(required):
        ok, want = ARG_RULES[name]
        if not ok(check[name]):
            raise UserError(f"{at}: check {kind!r} arg {name!r} must be {want}, got {check[name]!r}")
    if kind == "paragraph_first_word" and check["nth"] > check["n"]:
        raise UserError(f"{at}: check {kind!r} arg 'nth' ({check['nth']}) must be at most 'n' ({check['n']}), "
                        "the number of paragraphs")


def _squash(text):
    return " ".join(_text(text).lower().split())


def load_adherence(path=None):
    """Read and validate the adherence prompts (default: the packaged 50-prompt set)."""
    if path is None:
        source = resources.files("kdscale") / "assets" / "adherence.jsonl"
        name = "adherence.jsonl"
    else:
        source = Path(path)
        name = str(path)
        if not source.is_file():
            raise UserError(
                f"adherence file not found: {path}; set eval.adherence_file to an existing .jsonl "
                "or leave it empty for the built-in set"
            )
    records, first_line_of = [], {}
    with resources.as_file(source) as file:
        for lineno, rec in iter_jsonl(file, name):
            where = f"{name}:{lineno}"
            extra = sorted(set(rec) - RECORD_KEYS)
            if extra:
                raise UserError(f"{where}: unexpected key {extra[0]!r}; allowed keys: {', '.join(sorted(RECORD_KEYS))}")
            rid = rec.get("id")
            if not _is_text(rid):
                raise UserError(f"{where}: missing or empty 'id'; give each prompt a unique string id like \"adh-001\"")
            if rid in first_line_of:
                raise UserError(f"{where}: duplicate id {rid!r} (first used on line {first_line_of[rid]}); ids must be unique")
            first_line_of[rid] = lineno
            if not _is_text(rec.get("instruction")):
                raise UserError(f"{where}: missing or empty 'instruction' in {rid!r}; give the instruction text the model should follow")
            rec.setdefault("input", "")
            if not isinstance(rec["input"], str):
                raise UserError(f"{where}: 'input' in {rid!r} must be a string (use \"\" for none)")
            checks = rec.get("checks")
            if not isinstance(checks, list) or not checks:
                raise UserError(f'{where}: \'checks\' in {rid!r} must be a non-empty list like [{{"type": "lowercase"}}]')
            for i, check in enumerate(checks):
                _validate_check(where, i, check)
                if check["type"] == "repeat_prompt" and _squash(check["prompt"]) not in _squash(rec["instruction"]):
                    raise UserError(f"{where}: checks[{i}]: repeat_prompt arg 'prompt' must be copied from the "
                                    f"instruction of {rid!r}, which it is not")
            records.append(rec)
    if not records:
        raise UserError(f"{name}: no prompts found; add one JSON object per line")
    return records
