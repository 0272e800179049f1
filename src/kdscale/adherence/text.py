"""How the adherence checks read an answer: Unicode normalised, markdown removed, split into words,
sentences, paragraphs and blocks. The rules are those listed in kdscale.adherence's docstring."""

from __future__ import annotations

import re
import unicodedata

# a word: letters/digits joined by apostrophes ("don't"), a number with separators ("1,000", "3.14", "12:30",
# "1/2"), and a compound of up to 5 such parts joined by hyphens ("state-of-the-art"): one word each, as a
# grader (and a word processor) counts; a longer chain ("sun-sun-sun-sun-sun-sun") is that many words
_PART = r"\w+(?:(?:['’]|(?<=\d),(?=\d{3}(?!\d))|(?<=\d)[.:/](?=\d))\w+)*"
WORD_RE = re.compile(rf"(?<!\w-){_PART}(?:-{_PART}){{1,4}}(?!\w|-\w)|{_PART}")
TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*")  # a word split at hyphens and separators: what repeat_prompt compares
ALNUM = r"[^\W_]"  # a letter or digit
# phrase edges: no letter/digit (or an apostrophe inside a word) right outside the phrase
BEFORE = rf"(?<!{ALNUM})(?<!{ALNUM}')"
AFTER = rf"(?!{ALNUM})(?!'(?!s\b){ALNUM})"  # "wolf's" has the word wolf; "don't" has no "don"
EMPHASIS_RE = re.compile(rf"(?<!{ALNUM})[*_]+|[*_]+(?!{ALNUM})")  # only at word edges
HEADING_RE = re.compile(r"^[ \t]*#{1,6}[ \t]+", re.MULTILINE)
# what a reader does not see as a character: invisible marks go, Unicode spaces are spaces, line and
# paragraph separators are line breaks ("Section\u200b1" is "Section1"; "*\u00a0*\u00a0*" is "* * *")
INVISIBLE = "\u00ad\u200b\u200c\u200d\u2060\ufeff"  # soft hyphen, zero-width space/joiners, word joiner, BOM
SPACES = "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f\u205f\u3000"
CLEAN = str.maketrans({**dict.fromkeys(INVISIBLE), **dict.fromkeys(SPACES, " "),
                       "\r": "\n", "\u2028": "\n", "\u2029": "\n\n"})
# quote, apostrophe and hyphen variants made plain, so "don’t", "donʼt" (a modifier letter) and "don't" match
QUOTES = str.maketrans({**dict.fromkeys("’‘‛ʼʻ´′＇", "'"), **dict.fromkeys("“”„‟＂", '"'),
                        "\u2010": "-", "\u2011": "-"})  # Unicode hyphens, so "well‑known" is "well-known"
RULE_RE = re.compile(r"^[ \t]*([-*_])(?:[ \t]*\1){2,}[ \t]*$")  # a markdown horizontal rule: *** or - - -
LIST_MARK_RE = re.compile(r"^[ \t]*(?:>[ \t]*)*(?:[-*+•‣◦▪]|\(?\d{1,3}[.)]|[a-z][.)])[ \t]+")
STAR_DIVIDER_RE = re.compile(r"^[ \t]*\*[ \t]+\*[ \t]+\*[ \t]*$|(?<!\S)\*{3,}(?!\S)", re.MULTILINE)
BLANK_LINE_RE = re.compile(r"\n[^\S\n]*(?:\n[^\S\n]*)+")  # one or more blank lines, \r\n too
SENTENCE_END_RE = re.compile(r"[.!?]+[\"')\]]*(?=\s|$)")  # read after _norm: quotes are straight
# words whose final "." is not a sentence end: titles before a name, and Latin abbreviations
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "prof", "st", "mt", "capt", "lt", "col", "gen", "gov",
                 "sen", "rev", "fr", "hon", "vs", "e.g", "i.e", "cf", "viz", "approx", "incl", "fig"}
# abbreviations whose "." is no sentence end when a number follows: "No. 3", "Vol. 2", "p. 45" (as written)
NUMBERING = {"No", "Nos", "Nr", "Vol", "vol", "Vols", "p", "pp", "Ch", "ch", "Sec", "Art", "Eq", "Op", "op", "Pt",
             "Para", "Ex", "Apt", "Rm", "Tel", "Ext", "ext"}
# common words that open a sentence: after "a B." or "vitamin C." they start one, after an initial a name follows
OPENERS = set("""a an the this that these those it its i we you he she they my our your his her their there here
then now so but and or yet also if when while after before as at in on by for with from to not no yes what why
how who which where all some many most every each one nothing everyone everything someone something""".split())
# a fenced code block: ``` or ~~~ (3 or more) to the same fence, or to the end (info strings of ``` have no `)
FENCE_RE = re.compile(r"^[ \t]{0,3}(?P<f>`{3,}(?=[^`\n]*$)|~{3,})[^\n]*(?:.*?\n[ \t]{0,3}(?P=f)[`~]*[ \t]*$|.*\Z)",
                      re.MULTILINE | re.DOTALL)
LEAD_CHARS = " \t\n\"'([>*_#-"  # what may stand between a sentence start and its first word
TITLE_LINE_RE = re.compile(r"[#*_\s]*<<[^<>\n]+>>[*_\s]*")
ENUMERATOR_RE = re.compile(r"\(?\d{1,3}[.)]|[a-z][.)]")


def is_blank(text):
    """True if the text has no letter or digit; such answers fail every check."""
    return re.search(ALNUM, text) is None


def clean(text):
    """NFC form with invisible marks removed, Unicode spaces plain and line breaks `\\n`: what every check reads
    (it keeps curly quotes, which JSON strings may hold)."""
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").translate(CLEAN)


def normalize(text):
    """`clean` text with curly quotes and apostrophe variants made straight, so `don’t` and an NFD `café`
    match their usual spelling."""
    return clean(text).translate(QUOTES)


def without_code(text):
    """The text with fenced code blocks removed: their "- " lines and `*` are code, not bullets or highlights."""
    return FENCE_RE.sub("", text)


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
        if word in NUMBERING and first.isdigit():  # No. 3, p. 45
            return False
        if _is_initial(before, after):  # the initials of J. K. Rowling
            return False
    return True


def _is_initial(before, after):
    """Whether the "." after `before` closes a name's initial (J. K. Rowling, John F. Kennedy, J.K. Rowling, the
    U.S. Army) rather than a sentence: a capital letter followed by a capitalized word. A letter after a number
    is a unit (350 F.), a lone letter after a lowercase word a grade or an option (a B., vitamin C.), and a common
    opening word after it starts a sentence (Plan B. Then)."""
    tokens = before.split()
    if not tokens or before[-1].isspace():
        return False
    letters = tokens[-1].lstrip("\"'(")
    nxt = re.match(r"[\"'(*_]*([^\W\d_]+)(\.?)", after)
    if not re.fullmatch(r"[A-HJ-Z]|[A-Z](?:\.[A-Z])+", letters) or nxt is None or not nxt.group(1)[0].isupper():
        return False
    if len(nxt.group(1)) == 1 and nxt.group(2):  # another initial follows: C. S. Lewis
        return True
    prev = tokens[-2] if len(tokens) > 1 else ""
    if prev[-1:].isdigit() or (len(letters) == 1 and prev.lstrip("\"'(")[:1].islower()):
        return False
    return nxt.group(1).lower() not in OPENERS


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
    """Paragraphs split at `***` dividers or at blank lines outside code blocks; None when two `***` have
    nothing between them."""
    text = normalize(response)
    if separator == "***":
        pieces = split_outside_code(STAR_DIVIDER_RE, text)
        inner = pieces[1:-1]
        if any(is_blank(p) for p in inner):
            return None
        return [p for p in pieces if not is_blank(p)]
    return [p for p in split_outside_code(BLANK_LINE_RE, text) if not is_blank(p)]


def split_outside_code(pattern, text):
    """The text split at the matches of `pattern` that start outside fenced code blocks (a blank line in
    code does not end a paragraph)."""
    code = [m.span() for m in FENCE_RE.finditer(text)]
    pieces, start = [], 0
    for m in pattern.finditer(text):
        if not any(a <= m.start() < b for a, b in code):
            pieces.append(text[start:m.start()])
            start = m.end()
    return pieces + [text[start:]]


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
