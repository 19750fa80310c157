"""Which prompts the semantic tier may serve: the languages its embedder and thresholds cover.

The local embedder (all-MiniLM-L6-v2) was trained on English, and the thresholds and verifier were
calibrated on English pairs (QQP). Outside that, its cosines say little: its vocabulary maps most
Cyrillic, Arabic or Devanagari words to the same unknown pieces, so "Что такое кошка?" and
"Что такое собака?" embed almost alike. Such prompts get the exact tier only, and the reason says
so. An operator who configures a multilingual embedder with its own calibration (a policy
threshold) sets ``ASAHI_SEMANTIC_LANGUAGES=all``.

The check is pure and cheap (~10-30 us): a script test over the letters, then, for Latin-script
text, a count of other languages' function words against English ones.
"""

from __future__ import annotations

from functools import lru_cache

import regex

from caching.semantic.features import NON_LATIN, normalize

# Scripts by name, for the reason shown to users; the first that occurs is named.
_SCRIPTS = (
    "Cyrillic", "Greek", "Arabic", "Hebrew", "Devanagari", "Bengali", "Tamil", "Telugu",
    "Hangul", "Hiragana", "Katakana", "Han", "Thai", "Armenian", "Georgian", "Ethiopic",
)  # fmt: skip
# A lone Greek letter is a mathematical symbol ("the value of π", "α and β"), not Greek text.
_LONE_GREEK = regex.compile(r"(?<![\p{L}\p{M}])\p{Greek}(?![\p{L}\p{M}])")
_WORD = regex.compile(r"[\p{L}\p{M}']+")

# Frequent English function words: their presence is what makes a Latin-script prompt English.
_ENGLISH = frozenset(
    "the a an is are was were be been am do does did what which who whom whose how why when where "
    "of to in on at for with from by about into than and or but not no can could should would will "
    "i you he she it we they my your its our their this that these those there here have has had "
    "if then so as me him her us them any some all more most very just also only please write "
    "explain give tell make".split()
)
# Other languages' function words that are not English words as well (so "die", "also", "in",
# "a" are left out). Words with letters English does not use (ä, ß, ñ, ç, ã...) count too.
_FOREIGN = frozenset(
    # German
    "der das und ist nicht ein eine einen ich wie mit für auf sind von dem des auch oder wir "
    "kann wird bitte über wer wann warum welche welcher welches gibt nach zum zur vom ins im "
    "sich mich mein dein kein keine haben sein werden viele wieviel "
    # French
    "le la les de des est et une pas que qui dans avec sur je vous nous ce cette sont du au aux "
    "mais où quel quelle quels pourquoi quand combien très être avoir il elle "
    # Spanish, Portuguese, Italian
    "el los las una por para qué cómo cuál del está pero también lo mi es tu su "
    "uma não como qual quais são isso esta este "
    "gli della di che è sono perché dei delle nel "
    # Dutch; Swedish, Danish, Norwegian; Polish; Turkish; Indonesian
    "het een en niet dat wat hoe ik je zijn voor wie waarom "
    "och att det som på är av för inte jag hur varför ikke og "
    "nie się jak czy dla "
    "bir ve bu ne nasıl neden için "
    "yang ini itu bagaimana".split()
) - _ENGLISH
_NON_ENGLISH_LETTERS = regex.compile(r"[äöüßñçãõåøæœłśżźćńęąğşıőűčřšžěůýþðìòùàèé]")

ALL = "all"


def outside(text: str, languages: str = "en") -> str | None:
    """Why ``text`` is outside the languages the semantic tier serves, or None if it is inside.

    ``languages`` is ``"en"`` (the shipped embedder's calibration) or ``"all"``.
    """
    if languages == ALL:
        return None
    return _outside_english(text)


@lru_cache(maxsize=4096)
def _outside_english(text: str) -> str | None:
    text = normalize(text)
    stripped = _LONE_GREEK.sub(" ", text)
    if NON_LATIN.search(stripped):
        script = next((s for s in _SCRIPTS if regex.search(rf"\p{{{s}}}", stripped)), "non-Latin")
        return f"{script} script is outside the semantic tier's calibration (English)"
    words = [w.casefold().strip("'") for w in _WORD.findall(text)]
    english = sum(w in _ENGLISH for w in words)
    foreign = sum(w in _FOREIGN or bool(_NON_ENGLISH_LETTERS.search(w)) for w in words)
    if foreign > english:
        return "language is outside the semantic tier's calibration (English)"
    return None
