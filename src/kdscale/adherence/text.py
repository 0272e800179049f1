"""How the adherence checks read an answer: Unicode normalised, markdown removed, split into words,
sentences, paragraphs and blocks. The rules are those listed in kdscale.adherence's docstring."""

from __future__ import annotations

import re
import unicodedata

WORD_RE = re.compile(r"\w+(?:['’]\w+)*")
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
RULE_RE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # a markdown horizontal rule: *** or - - -
LIST_MARK_RE = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:[-*+•‣◦▪]|\(?\d{1,3}[.)]|[a-z][.)])[ \t]+")
STAR_DIVIDER_RE = re.compile(r"^[ \t]*\*[ \t]+\*[ \t]+\*[ \t]*$|(?<!\S)\*{3,}(?!\S)", re.MULTILINE)
BLANK_LINE_RE = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")  # one or more blank lines, \r\n too
SENTENCE_END_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")  # read after _norm: quotes are straight
# words whose final "." is not a sentence end: titles before a name, and Latin abbreviations
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "capt", "lt", "col", "gen", "gov",
                 "sen", "rev", "fr", "hon", "vs", "e.g", "i.e", "cf", "viz", "approx", "incl", "fig"}
LEAD_CHARS = " \t\n\"'([>*_#-"  # what may stand between a sentence start and its first word
TITLE_LINE_RE = re.compile(r"[#*_\s]*<<[^<>\n]+>>[*_\s]*")
ENUMERATOR_RE = re.compile(r"\(?\d{1,3}[.)]|[a-z][.)]")


def is_blank(text):
    """True if the text has no letter or digit; such answers fail every check."""
    return re.search(ALNUM, text) is None


def normalize(text):
    """NFC form with curly quotes made straight and Unicode spaces plain, so `don’t` and an NFD `café`
    match their usual spelling."""
    return unicodedata.normalize("NFC", text).translate(QUOTES)


def strip_markdown(text):
    """The text with markdown emphasis at word edges, code ticks and heading marks removed."""
    return EMPHASIS_RE.sub("", HEADING_RE.sub("", text).replace("`", ""))


def reading_text(response):
    """What word, keyword and phrase checks read: normalized, markdown removed."""
    return strip_markdown(normalize(response))


def count_words(text):
    """Number of words (`\\w+` runs, apostrophes inside a word kept) after markdown is removed."""
    return len(WORD_RE.findall(reading_text(text)))


def phrase_pattern(phrase):
    """A whole-word, whitespace-tolerant pattern for a keyword or phrase (quotes and markdown as in `_text`)."""
    words = reading_text(phrase).split()
    return BEFORE + r"\s+".join(re.escape(w) for w in words) + AFTER


def has_phrase(text, phrase):
    """Case-insensitive whole-word search of an already `_text`-ed text."""
    return re.search(phrase_pattern(phrase), text, re.IGNORECASE) is not None


def compare(count, relation, n):
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
    for line in normalize(text).split("\n"):
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
    return [strip_markdown(" ".join(b)) for b in blocks if b]


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
    return [s for s in sentences if not is_blank(s) and not ENUMERATOR_RE.fullmatch(s)]


def paragraphs(response, separator):
    """Paragraphs split at `***` dividers or at blank lines; None when two `***` have nothing between them."""
    if separator == "***":
        pieces = STAR_DIVIDER_RE.split(response)
        inner = pieces[1:-1]
        if any(is_blank(p) for p in inner):
            return None
        return [p for p in pieces if not is_blank(p)]
    return [p for p in BLANK_LINE_RE.split(response) if not is_blank(p)]


def _first_word(text):
    m = WORD_RE.search(reading_text(text))
    return m.group(0).lower() if m else None


def starts_with(text, word):
    """The first word is `word`, or its possessive ("Summer's" starts with summer)."""
    word = normalize(word).strip().lower()
    return _first_word(text) in (word, word + "'s")


def marker_pattern(marker):
    """P.S. and P.P.S., however spaced (P. P. S., P .S.) and with the last dot optional (P.S), whether
    the instruction writes them P.P.S, P. P. S. or P.P.S.; other markers as written."""
    marker = normalize(marker).strip()
    if "." in marker and re.fullmatch(r"(?:[^\W\d_][\s.]*){2,}", marker):
        body = r"[ \t]*\.[ \t]*".join(re.findall(r"[^\W\d_]", marker)) + rf"[ \t]*\.?(?!\.?{ALNUM})"  # not P.S.A.
    else:
        body = r"\s+".join(re.escape(w) for w in marker.split())
    return body + AFTER
