"""Cheap text analysis behind the decision procedure: hard guards and verifier features.

Everything here is pure (no I/O, no global state), so it is thread-safe and costs tens of
microseconds per pair. The guards catch the classic false hits of embedding caches, where two
prompts share almost every word but ask different things: negation, other numbers, dates, names,
units, a swapped direction, another programming language, or another kind of question.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import regex

# Unicode-aware throughout (NFKC, casefold, Unicode letters): an ASCII-only pattern drops every
# Cyrillic, Arabic or CJK letter, so all such prompts compare as the same (empty) text, and
# "Zürich" reads as "rich". Scripts written without spaces (Han, kana, Thai...) have no word
# boundaries to find, so each of their characters is a token of its own.
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}\p{Tibetan}"
_LETTER = rf"[[\p{{L}}\p{{M}}]--[{_UNSPACED}]]"
_ARROW = r"->|=>|[\u2192\u21d2\u27f6\u27f9\u2794\u279c]"
_TOKEN_RE = regex.compile(
    rf"(?:{_ARROW})|{_LETTER}+[+#]+|{_LETTER}+(?:'\p{{Ll}}+)?|\d+(?:[.,]\d+)*[kK]?\b|\d+(?:[.,]\d+)*"
    rf"|[+#]+|[{_UNSPACED}]|\p{{So}}",
    regex.V1,
)
_WORD_RE = regex.compile(
    rf"{_LETTER}[[\p{{L}}\p{{M}}+#.']--[{_UNSPACED}]]*|\d+(?:[.,]\d+)*", regex.V1
)
_ARROWS = regex.compile(_ARROW)
_POSSESSIVE = re.compile(r"'s$")
NON_LATIN = regex.compile(r"[[\p{L}\p{M}]--[\p{Latin}\p{Inherited}]]", regex.V1)
_WORD_END = re.compile(r"'s?$")
# Decimal digits of every script as ASCII ("١٥" is 15); NFKC leaves most of them alone.
_DIGITS = {
    i: str(unicodedata.decimal(chr(i)))
    for i in range(0x80, 0x10000)
    if unicodedata.category(chr(i)) == "Nd"
}


def normalize(text: str) -> str:
    """NFKC with every script's digits as ASCII and the typographic apostrophe as "'"."""
    return unicodedata.normalize("NFKC", text).translate(_DIGITS).replace("\u2019", "'")


STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "am",
        "do",
        "does",
        "did",
        "doing",
        "have",
        "has",
        "had",
        "having",
        "i",
        "me",
        "my",
        "mine",
        "we",
        "us",
        "our",
        "you",
        "your",
        "he",
        "him",
        "his",
        "she",
        "her",
        "it",
        "its",
        "they",
        "them",
        "their",
        "this",
        "that",
        "these",
        "those",
        "of",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "about",
        "as",
        "into",
        "through",
        "to",
        "from",
        "up",
        "down",
        "out",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "and",
        "but",
        "or",
        "nor",
        "so",
        "than",
        "too",
        "very",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "just",
        "also",
        "only",
        "own",
        "same",
        "such",
        "some",
        "any",
        "each",
        "every",
        "all",
        "both",
        "few",
        "more",
        "most",
        "other",
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "when",
        "where",
        "why",
        "how",
        "if",
        "because",
        "while",
        "until",
        "against",
        "between",
        "during",
        "before",
        "after",
        "above",
        "below",
        "s",
        "t",
        "don",
        "i'm",
        "it's",
        "what's",
        "there's",
        "get",
        "got",
        "one",
        "ever",
        "really",
        "much",
        "many",
        "way",
        "best",
        "good",
        "like",
    ]
)

NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nobody",
        "nothing",
        "neither",
        "nor",
        "without",
        "cannot",
        "can't",
        "don't",
        "doesn't",
        "didn't",
        "isn't",
        "aren't",
        "wasn't",
        "weren't",
        "won't",
        "wouldn't",
        "shouldn't",
        "couldn't",
        "hasn't",
        "haven't",
        "hadn't",
        "mustn't",
        "unsafe",
        "illegal",
        "impossible",
        # Other languages' negations (the semantic tier serves them only with an embedder
        # configured for them, see caching.semantic.coverage; the guard should still know them).
        "nicht", "kein", "keine", "keinen", "keiner", "nie", "niemals",  # de
        "pas", "jamais", "aucun", "aucune",  # fr
        "nunca", "jamás", "ningún", "ninguna", "não", "non", "mai", "niet", "geen", "nooit",
        "не", "нет", "ни", "никогда", "ні", "немає",  # ru, uk
        "δεν", "μη", "μην", "όχι",  # el
        "לא", "אין", "אל",  # he
        "لا", "ليس", "ليست", "لم", "لن", "غير",  # ar
        "नहीं", "न", "मत",  # hi
    ]
)
# Negation inside a word, where there are no word boundaries to find (ja, zh, ko).
NEGATION_MARKERS = ("ない", "ません", "不", "没", "沒", "別", "别", "未", "않", "못", "없")

NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6",
    "seven": "7", "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12",
    "fifteen": "15", "twenty": "20", "thirty": "30", "fifty": "50", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000",
}  # fmt: skip

MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
WEEKDAYS = frozenset(["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])
DATE_WORDS = frozenset(["today", "tomorrow", "yesterday", "tonight"])

# Unit families: a prompt about kilometres is not a prompt about miles.
UNITS = {
    "celsius": "celsius", "centigrade": "celsius", "fahrenheit": "fahrenheit", "kelvin": "kelvin",
    "km": "km", "kms": "km", "kilometer": "km", "kilometers": "km", "kilometre": "km",
    "kilometres": "km", "mile": "mile", "miles": "mile", "meter": "m", "meters": "m",
    "metre": "m", "metres": "m", "feet": "ft", "foot": "ft", "ft": "ft", "inch": "inch",
    "inches": "inch", "cm": "cm", "centimeter": "cm", "centimeters": "cm", "mm": "mm",
    "kg": "kg", "kgs": "kg", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg",
    "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "gram": "g", "grams": "g",
    "ounce": "oz", "ounces": "oz", "oz": "oz", "liter": "l", "liters": "l", "litre": "l",
    "litres": "l", "gallon": "gal", "gallons": "gal", "dollar": "usd", "dollars": "usd",
    "usd": "usd", "euro": "eur", "euros": "eur", "eur": "eur", "rupee": "inr", "rupees": "inr",
    "inr": "inr", "yen": "jpy", "yuan": "cny", "bitcoin": "btc", "btc": "btc",
    "second": "s", "seconds": "s", "minute": "min", "minutes": "min", "hour": "h",
    "hours": "h", "day": "day", "days": "day", "week": "week", "weeks": "week",
    "month": "month", "months": "month", "year": "year", "years": "year",
    "mb": "mb", "gb": "gb", "tb": "tb", "kb": "kb", "mbps": "mbps", "ghz": "ghz", "mph": "mph",
    "kmh": "kmh", "calorie": "kcal", "calories": "kcal", "kcal": "kcal", "watt": "w",
    "watts": "w", "volt": "v", "volts": "v", "percent": "pct",
}  # fmt: skip

LANGUAGES = {
    "python": "python", "java": "java", "javascript": "javascript", "js": "javascript",
    "typescript": "typescript", "ts": "typescript", "c": "c", "c++": "cpp", "cpp": "cpp",
    "c#": "csharp", "csharp": "csharp", "golang": "go", "go": "go", "rust": "rust", "ruby": "ruby",
    "php": "php", "swift": "swift", "kotlin": "kotlin", "scala": "scala", "haskell": "haskell",
    "perl": "perl", "r": "r", "matlab": "matlab", "sql": "sql", "bash": "bash", "lua": "lua",
    "dart": "dart", "elixir": "elixir", "erlang": "erlang", "fortran": "fortran",
    "cobol": "cobol", "julia": "julia", "clojure": "clojure", "assembly": "assembly",
    "html": "html", "css": "css", "node": "javascript", "nodejs": "javascript",
}  # fmt: skip

# Language names that are also ordinary words or letters ("vitamin C", "go home").
_AMBIGUOUS_LANGUAGES = frozenset({"c", "r", "go", "ts", "js", "node"})

# Connectors whose two sides cannot be swapped without changing the meaning.
DIRECTIONAL = frozenset({"to", "into", "than", "from", "over", "->", "vs", "versus"})

# Kinds of question that cannot stand in for each other ("why" is not "when").
_QUESTION_KINDS = (
    ("how come", "reason"), ("why", "reason"), ("how many", "quantity"),
    ("how much", "quantity"), ("how long", "duration"), ("how old", "age"),
    ("how often", "frequency"), ("how much time", "duration"), ("when", "time"), ("what time", "time"),
    ("what year", "time"), ("where", "place"), ("who", "person"), ("whom", "person"),
    ("how", "method"),
)  # fmt: skip
_SPECIFIC_KINDS = frozenset({"reason", "quantity", "time", "place", "person", "duration", "age"})


@dataclass(frozen=True, slots=True)
class TextInfo:
    """What the guards and features need to know about one text (computed once, cached)."""

    lower: str
    tokens: tuple[str, ...]
    content: frozenset[str]
    numbers: frozenset[str]
    dates: frozenset[str]
    names: frozenset[str]
    units: frozenset[str]
    languages: frozenset[str]
    negated: bool
    question_kind: str | None
    directed: frozenset[tuple[str, str]]
    trigrams: frozenset[str]
    # Letters outside the Latin script: the English word lists above do not apply, so the guards
    # fall back to what holds in any language (see _unlisted_language_violation).
    non_latin: bool


def _stem(word: str) -> str:
    # A crude plural/verb-form folding: enough to match "cats" with "cat", "using" with "use".
    for suffix in ("ies", "ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _number(token: str) -> str:
    """Canonical form of a numeric token: "30,000", "30k" and "30000" are the same number."""
    token = token.replace(",", "")
    if token[-1] in "kK":
        try:
            return str(int(float(token[:-1]) * 1000))
        except ValueError:
            return token
    return token


def _question_kind(lower: str) -> str | None:
    # Only the opening words: a "when" deep inside a sentence does not make it a "when" question.
    head = " ".join(lower.split()[:3])
    best: tuple[int, str] | None = None
    for phrase, kind in _QUESTION_KINDS:
        match = re.search(rf"\b{re.escape(phrase)}\b", head)
        # The earliest question word wins; at equal position the longer phrase does.
        if match and (best is None or match.start() < best[0]):
            best = (match.start(), kind)
    return best[1] if best else None


def _directed_pairs(tokens: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    pairs = set()
    for i, token in enumerate(tokens):
        if token not in DIRECTIONAL or i == 0 or i + 1 >= len(tokens):
            continue
        left = next((t for t in reversed(tokens[:i]) if t not in STOPWORDS), None)
        right = next((t for t in tokens[i + 1 :] if t not in STOPWORDS), None)
        if left and right and left != right:
            pairs.add((left, right))
    return frozenset(pairs)


@lru_cache(maxsize=4096)
def analyze(text: str) -> TextInfo:
    """Tokenise and annotate ``text`` (results are memoised: cached prompts repeat)."""
    text = normalize(text)
    lower = text.casefold()
    raw_words = _WORD_RE.findall(text)
    tokens = tuple(
        "->" if _ARROWS.fullmatch(t) else _POSSESSIVE.sub("", t.casefold())
        for t in _TOKEN_RE.findall(text)
    )
    numbers = {_number(t) for t in tokens if t[0].isdigit()}
    numbers |= {NUMBER_WORDS[t] for t in tokens if t in NUMBER_WORDS and t != "one"}
    words = [_WORD_END.sub("", w.rstrip(".")) for w in raw_words]
    # In Title Case Text capitals say nothing about names.
    title_case = sum(w[:1].isupper() for w in words) > 0.6 * max(len(words), 1)
    names = (
        set()
        if title_case
        else {
            w.casefold()
            for i, w in enumerate(words)
            # Capitalised inside the sentence (not after a full stop) and not a function word.
            if i > 0
            and w[:1].isupper()
            and w.casefold() not in STOPWORDS
            and w.casefold() not in NEGATIONS
            and not raw_words[i - 1].endswith(".")
            and w.casefold() not in UNITS
            and w.casefold() not in LANGUAGES
            and w != "I"
        }
    )
    dates = {t for t in tokens if t in MONTHS or t in WEEKDAYS or t in DATE_WORDS}
    dates |= {n for n in numbers if len(n) == 4 and n[:2] in {"19", "20"}}
    languages = {LANGUAGES[t] for t in tokens if t in LANGUAGES and t not in _AMBIGUOUS_LANGUAGES}
    # Single letters count as languages only next to words that make them so ("in C", "C code").
    for i, t in enumerate(tokens):
        if t in _AMBIGUOUS_LANGUAGES:
            window = set(tokens[max(0, i - 2) : i + 3])
            if window & {"in", "code", "program", "programming", "language", "using", "learn"}:
                languages.add(LANGUAGES[t])
    content = frozenset(_stem(t) for t in tokens if t not in STOPWORDS and len(t) > 1)
    padded = f"  {' '.join(tokens)}  "
    trigrams = frozenset(padded[i : i + 3] for i in range(len(padded) - 2))
    return TextInfo(
        lower=lower,
        tokens=tokens,
        content=content,
        numbers=frozenset(numbers),
        dates=frozenset(dates),
        names=frozenset(names),
        units=frozenset(UNITS[t] for t in tokens if t in UNITS),
        languages=frozenset(languages),
        negated=any(t in NEGATIONS or t.endswith("n't") for t in tokens)
        or any(m in text for m in NEGATION_MARKERS),
        question_kind=_question_kind(lower),
        directed=_directed_pairs(tokens),
        trigrams=trigrams,
        non_latin=bool(NON_LATIN.search(text)),
    )


def _differs(a: frozenset[str], b: frozenset[str]) -> bool:
    """Both sides mention something of a kind, and not the same things."""
    return bool(a) and bool(b) and a != b


def _fmt(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _nearly_same_words(q: TextInfo, c: TextInfo) -> bool:
    """At most one content word (negations aside) differs on each side."""
    q_rest, c_rest = q.content - NEGATIONS, c.content - NEGATIONS
    return len(q_rest - c_rest) <= 1 and len(c_rest - q_rest) <= 1


_COORDINATORS = frozenset({"and", "or", "vs", "versus", "&", "with", "nor"})


def _swapped_roles(q: TextInfo, c: TextInfo) -> tuple[str, str] | None:
    """Same words, two of them trading places ("Indian women ... Pakistani men" and back).

    Swaps across a coordinator ("Python or Java" / "Java or Python") keep the meaning and pass.
    """
    q_seq = [t for t in q.tokens if t not in STOPWORDS and len(t) > 1]
    c_seq = [t for t in c.tokens if t not in STOPWORDS and len(t) > 1]
    if sorted(q_seq) != sorted(c_seq) or q_seq == c_seq:
        return None
    diff = [i for i, (a, b) in enumerate(zip(q_seq, c_seq, strict=True)) if a != b]
    if len(diff) != 2:
        return None
    i, j = diff
    if q_seq[i] != c_seq[j] or q_seq[j] != c_seq[i]:
        return None
    start, end = q.tokens.index(q_seq[i]), q.tokens.index(q_seq[j])
    between = set(q.tokens[start + 1 : end])
    if between & _COORDINATORS or end - start == 1:
        return None
    return q_seq[i], q_seq[j]


def guard_violation(query: str, candidate: str) -> str | None:
    """Why ``candidate``'s answer must not be served for ``query`` (None if no guard fires)."""
    q, c = analyze(query), analyze(candidate)
    if q.negated != c.negated and _nearly_same_words(q, c):
        return "negation differs"
    if (q.numbers - c.numbers) and (c.numbers - q.numbers):
        return f"numbers differ: {_fmt(q.numbers)} vs {_fmt(c.numbers)}"
    if (q.dates - c.dates) and (c.dates - q.dates):
        return f"dates differ: {_fmt(q.dates)} vs {_fmt(c.dates)}"
    if (q.units - c.units) and (c.units - q.units):
        return f"units differ: {_fmt(q.units)} vs {_fmt(c.units)}"
    if _differs(q.languages, c.languages):
        return f"programming language differs: {_fmt(q.languages)} vs {_fmt(c.languages)}"
    swapped = {(b, a) for a, b in q.directed} & c.directed
    if swapped - q.directed:
        a, b = sorted(swapped)[0]
        return f"direction swapped: {b} -> {a} vs {a} -> {b}"
    roles = _swapped_roles(q, c)
    if roles:
        return f"roles swapped: {roles[0]} and {roles[1]}"
    only_q = {n for n in q.names if n not in c.tokens and _stem(n) not in c.content}
    only_c = {n for n in c.names if n not in q.tokens and _stem(n) not in q.content}
    if only_q and only_c:
        return f"names differ: {_fmt(frozenset(only_q))} vs {_fmt(frozenset(only_c))}"
    if (
        q.question_kind in _SPECIFIC_KINDS
        and c.question_kind in _SPECIFIC_KINDS
        and q.question_kind != c.question_kind
    ):
        return f"different question: {q.question_kind} vs {c.question_kind}"
    if q.non_latin or c.non_latin:
        return _unlisted_language_violation(q, c)
    return None


def _stems(info: TextInfo) -> list[str]:
    # A language-blind stem: the first four letters of a word ("русского" and "русский" agree),
    # or the character itself in scripts written without spaces.
    return [t[:4] for t in info.tokens if t not in STOPWORDS]


def _letter_pairs(info: TextInfo) -> Counter[str]:
    letters = "".join(info.tokens)
    return Counter(letters[i : i + 2] for i in range(len(letters) - 1))


def _unlisted_language_violation(q: TextInfo, c: TextInfo) -> str | None:
    """Guards for scripts whose names, units and direction words are in no list here (only with
    ASAHI_SEMANTIC_LANGUAGES=all): without knowing which word is a name, two texts that differ by
    one word, or hold the same words in another order ("from A to B" / "from B to A"), may not
    stand in for each other."""
    q_stems, c_stems = _stems(q), _stems(c)
    if sorted(q_stems) == sorted(c_stems) and q_stems != c_stems:
        return "word order differs"
    # The same letters in another order, where affixes hide the words ("מעברית לאנגלית" /
    # "מאנגלית לעברית"): nearly the same letter pairs, not the same sequence.
    q_pairs, c_pairs = _letter_pairs(q), _letter_pairs(c)
    union = sum((q_pairs | c_pairs).values())
    if union and q_pairs != c_pairs and sum((q_pairs & c_pairs).values()) / union >= 0.75 \
            and q.tokens != c.tokens and len(q.tokens) == len(c.tokens):
        return "word order differs"
    q_only, c_only = set(q_stems) - set(c_stems), set(c_stems) - set(q_stems)
    if len(q_only) == 1 and len(c_only) == 1:
        return f"one word differs: {q_only.pop()}… vs {c_only.pop()}…"
    return None


FEATURE_NAMES: tuple[str, ...] = (
    "similarity",
    "content_jaccard",
    "content_min_containment",
    "content_max_containment",
    "trigram_jaccard",
    "unique_content_min",
    "unique_content_max",
    "length_ratio",
    "numbers_only_one_side",
    "names_unmatched",
    "same_question_kind",
    "specific_kind_mismatch",
    "first_token_equal",
    "negation_mismatch",
)


def features(query: str, candidate: str, similarity: float) -> np.ndarray:
    """The verifier's input vector for one pair (order of :data:`FEATURE_NAMES`)."""
    q, c = analyze(query), analyze(candidate)
    inter = len(q.content & c.content)
    union = len(q.content | c.content) or 1
    sizes = (len(q.content) or 1, len(c.content) or 1)
    tri_union = len(q.trigrams | c.trigrams) or 1
    lengths = (len(q.tokens) or 1, len(c.tokens) or 1)
    names_unmatched = len({n for n in q.names if n not in c.tokens}) + len(
        {n for n in c.names if n not in q.tokens}
    )
    return np.array(
        [
            similarity,
            inter / union,
            inter / max(sizes),
            inter / min(sizes),
            len(q.trigrams & c.trigrams) / tri_union,
            min(len(q.content - c.content), len(c.content - q.content)),
            max(len(q.content - c.content), len(c.content - q.content)),
            min(lengths) / max(lengths),
            float(bool(q.numbers) != bool(c.numbers)),
            names_unmatched,
            float(q.question_kind == c.question_kind),
            float(
                q.question_kind != c.question_kind
                and q.question_kind in _SPECIFIC_KINDS
                and c.question_kind in _SPECIFIC_KINDS
            ),
            float(bool(q.tokens) and bool(c.tokens) and q.tokens[0] == c.tokens[0]),
            float(q.negated != c.negated),
        ],
        dtype=np.float64,
    )
