"""The response language: a small built-in detector, no dependency (the checks need only the languages
the prompts ask for, and an answer is short)."""

from __future__ import annotations

from kdscale.adherence.text import TOKEN_RE, normalize

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
    for ch in normalize(text):
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
    for ch in normalize(text[:20_000]).lower():
        for lang, letters in LETTERS.items():
            scores[lang] += ch in letters
    for i, m in enumerate(TOKEN_RE.finditer(normalize(text).lower())):
        if i >= 5000:
            break
        for lang, words in STOP_SETS.items():
            scores[lang] += m.group(0) in words
    ranked = sorted(scores.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return None
    return max(scores, key=scores.get)
