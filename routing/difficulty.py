"""Learned prompt difficulty: the probability that a prompt needs the strong model.

The predictor is a linear model over (a) 35 general prompt features (length, structure, digit/math/
code density, reasoning cues, answer-option shape, word rarity by a general English frequency list,
numbers and operators in the question, sentence structure) and (b) a compact TF-IDF lexical model
with strong ridge regularisation, blended with standardised log-length so that it cannot rank
prompts much worse than the prompt-length baseline on task families it never saw, and (v3) with
how alike the answer options are (the closest pair's character-trigram cosine): options that differ
by a word or a digit are where the weak model slips. It is trained by
`python -m routing.training` (see that module) and shipped as `routing/artifacts/difficulty_v3.json`;
`DifficultyModel.version` names the artifact in every routing reason.

Everything here is pure Python: feature extraction is a handful of precompiled regexes and a dict
lookup per token, well under a millisecond per prompt. Word rarity reads wordfreq's English table
(loaded once per process; words below Zipf 2 are dropped from it to keep it small).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

ARTIFACT_PATH = Path(__file__).resolve().parent / "artifacts" / "difficulty_v3.json"
ARTIFACT_FORMAT = "asahi-difficulty-v3"

# Long prompts: structure is visible in the head; the length feature still sees the full prompt.
_MAX_SCAN_CHARS = 4000

_OPTION = re.compile(r"^\s*([A-J])[\.\)]\s*(.*)$", re.M)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z]+")
_ROMAN = re.compile(r"^\s*(I|II|III|IV)\.", re.M)
# Same token rule as scikit-learn's default TfidfVectorizer, so training and serving agree.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
# Character-class counts via str.translate (C speed) instead of regex scans.
_DROP_DIGITS = str.maketrans("", "", "0123456789")
_DROP_MATH = str.maketrans("", "", "=+-*/^<>≤≥∑∫√π$")
_DROP_CODE = str.maketrans("", "", "{};")
_CODE_MARKERS = ("```", "def ", "return", "print(", "==", "for (", "int ")
_REASON_WORDS = frozenset(
    [
        "why",
        "explain",
        "prove",
        "derive",
        "calculate",
        "compute",
        "solve",
        "step",
        "therefore",
        "if",
        "then",
        "suppose",
        "assume",
        "must",
        "implies",
        "valid",
        "true",
        "false",
        "statement",
    ]
)
_NEGATION_WORDS = frozenset({"NOT", "EXCEPT", "LEAST", "never", "not"})
# v2 features: rarity, numbers/operators in the question, sentence structure.
_RARITY_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")
_NUMBER_SEP = re.compile(r"\d+(?:[.,]\d+)?")
_OPERATOR = re.compile("[=+\\-*/^<>%\u00d7\u00f7]")  # incl. multiplication and division signs
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")
# Space-separated lower-cased words with no vowel group (each counts as one syllable).
_NO_VOWEL_WORD = re.compile(r"(?:^| )[^aeiouy ]+(?= |$)")
_MIN_ZIPF = 2.0  # words rarer than this (or unknown) count as Zipf 0

GENERAL_FEATURES: tuple[str, ...] = (
    "log_chars",
    "log_question_chars",
    "log_options_chars",
    "log_mean_option_chars",
    "has_options",
    "digit_density",
    "math_density",
    "code_density",
    "reasoning_cue_rate",
    "has_negation",
    "has_roman_list",
    "log_lines",
    "mean_word_len",
    "long_word_rate",
    "capitalised_rate",
    "log_numbers",
    "short_option_rate",
    "option_len_spread",
    "has_question_mark",
    "has_statement_pair",
    "log_quotes",
    # v2
    "rare_word_rate",
    "very_rare_word_rate",
    "mean_zipf",
    "rarest_fifth_zipf",
    "log_question_numbers",
    "log_question_operators",
    "log_sentences",
    "log_words_per_sentence",
    "numeric_option_rate",
    "option_rare_word_rate",
    "option_question_overlap",
    "syllables_per_word",
    "log_question_words",
    # v3
    "option_similarity",
)
OPTION_SIMILARITY = GENERAL_FEATURES.index("option_similarity")
HAS_OPTIONS = GENERAL_FEATURES.index("has_options")


@lru_cache(maxsize=1)
def _zipf_table() -> dict[str, float]:
    """English word -> Zipf frequency (log10 per billion words), from wordfreq (Apache-2.0 code;
    its data is CC-BY-SA 4.0, read from the installed package, never copied into the project).

    wordfreq stores words in centibel bins, most frequent first: bin i holds Zipf 9 - i/100.
    About 0.6 s and 40 MB once per process: `warm()` does it off the request path."""
    from wordfreq import get_frequency_list

    table = {}
    for i, words in enumerate(get_frequency_list("en")):
        z = round(9.0 - i / 100.0, 2)
        if z < _MIN_ZIPF:
            break
        for word in words:
            table[word] = z
    return table


def _rarity_features(question: str, options: list[tuple[str, str]]) -> list[float]:
    zipf = _zipf_table()
    words = [w.lower() for w in _RARITY_WORD.findall(question)]
    n = max(len(words), 1)
    zs = [zipf.get(w, 0.0) for w in words]
    rarest = sorted(zs)[: max(1, n // 5)]
    sentences = max(len(_SENTENCE_END.findall(question)), 1)
    option_words = [_RARITY_WORD.findall(o[1]) for o in options]
    n_option_words = max(sum(len(ws) for ws in option_words), 1)
    q_set = set(words)
    # Syllables per word = vowel groups, at least one per word; counted on the joined words at
    # once (a group never spans the separating space).
    joined = " ".join(words)
    syllables = len(_VOWEL_GROUP.findall(joined)) + len(_NO_VOWEL_WORD.findall(joined))
    return [
        sum(1 for z in zs if z < 3.0) / n,
        sum(1 for z in zs if z < _MIN_ZIPF) / n,
        sum(zs) / n,
        sum(rarest) / len(rarest) if zs else 0.0,
        math.log1p(len(_NUMBER_SEP.findall(question))),
        math.log1p(len(_OPERATOR.findall(question))),
        math.log1p(sentences),
        math.log1p(n / sentences),
        (sum(1 for o in options if _NUMBER_SEP.search(o[1])) / len(options)) if options else 0.0,
        sum(1 for ws in option_words for w in ws if zipf.get(w.lower(), 0.0) < 3.0)
        / n_option_words,
        sum(1 for ws in option_words for w in ws if w.lower() in q_set) / n_option_words,
        syllables / n,
        math.log1p(n),
    ]


def _trigrams(text: str) -> Counter[str]:
    padded = f" {' '.join(text.lower().split())} "
    return Counter(padded[i : i + 3] for i in range(max(len(padded) - 2, 1)))


def option_similarity(options: list[tuple[str, str]]) -> float:
    """Cosine of character-trigram counts of the two most alike answer options (0 without two
    options): near-identical options ("3 and 4" / "3 and 5") make a question harder to get right."""
    grams = [_trigrams(o[1]) for o in options[:10]]
    norms = [math.sqrt(sum(v * v for v in g.values())) for g in grams]
    best = 0.0
    for i in range(len(grams)):
        for j in range(i + 1, len(grams)):
            if norms[i] and norms[j]:
                small, large = sorted((grams[i], grams[j]), key=len)
                dot = sum(v * large.get(k, 0) for k, v in small.items())
                best = max(best, dot / (norms[i] * norms[j]))
    return best


def general_features(prompt: str) -> list[float]:
    """The general (task-family agnostic) features, in GENERAL_FEATURES order."""
    n_chars = len(prompt)
    text = prompt[:_MAX_SCAN_CHARS]
    n = max(len(text), 1)
    words = _WORD.findall(text)
    n_words = max(len(words), 1)
    lower_words = [w.lower() for w in words]
    options = _OPTION.findall(text)
    option_lens = [len(o[1]) for o in options]
    question = text
    if options:
        cut = text.find("\n" + options[0][0] + ".")
        question = text[:cut] if cut > 0 else text
    mean_opt = sum(option_lens) / len(option_lens) if option_lens else 0.0
    spread = 0.0
    if option_lens:
        var = sum((x - mean_opt) ** 2 for x in option_lens) / len(option_lens)
        spread = math.sqrt(var) / (mean_opt + 1)
    digits = n - len(text.translate(_DROP_DIGITS))
    math_syms = n - len(text.translate(_DROP_MATH)) + text.count("\\frac") + text.count("\\sqrt")
    code = n - len(text.translate(_DROP_CODE)) + sum(text.count(m) for m in _CODE_MARKERS)
    reasoning = sum(1 for w in lower_words if w in _REASON_WORDS) + text.lower().count(
        "which of the following"
    )
    return [
        math.log1p(n_chars),
        math.log1p(len(question)),
        math.log1p(sum(option_lens)),
        math.log1p(mean_opt),
        float(bool(options)),
        digits / n,
        math_syms / n,
        code / n,
        reasoning / n_words,
        float(any(w in _NEGATION_WORDS for w in words)),
        float(bool(_ROMAN.search(text))),
        math.log1p(text.count("\n") + 1),
        sum(len(w) for w in words) / n_words if words else 0.0,
        sum(1 for w in words if len(w) >= 9) / n_words,
        sum(1 for w in words if w[0].isupper()) / n_words,
        math.log1p(len(_NUMBER.findall(text))),
        (sum(1 for x in option_lens if x <= 3) / len(option_lens)) if option_lens else 0.0,
        spread,
        float("?" in text),
        float("Statement 1" in text),
        math.log1p(text.count('"')),
        *_rarity_features(question, options),
        option_similarity(options),
    ]


def token_counts(prompt: str) -> Counter[str]:
    """Lower-cased word counts used by the lexical part."""
    return Counter(_TOKEN.findall(prompt[:_MAX_SCAN_CHARS].lower()))


def tfidf_vector(counts: Counter[str], idf: dict[str, float]) -> dict[str, float]:
    """Sublinear-TF x IDF, L2-normalised, restricted to the known vocabulary."""
    vec = {t: (1.0 + math.log(c)) * idf[t] for t, c in counts.items() if t in idf}
    norm = math.sqrt(sum(v * v for v in vec.values()))
    if norm == 0.0:
        return {}
    return {t: v / norm for t, v in vec.items()}


@dataclass(frozen=True)
class DifficultyModel:
    """Parameters of the shipped predictor (see module docstring)."""

    feature_mean: tuple[float, ...]
    feature_scale: tuple[float, ...]
    general_coef: tuple[float, ...]
    intercept: float
    idf: dict[str, float]
    lexical_coef: dict[str, float]
    score_scale: float  # std of the ridge output on training data
    length_mean: float
    length_scale: float
    length_weight: float  # blend weight of standardised log-length
    option_weight: float  # blend weight of standardised option similarity (prompts with options)
    calib_slope: float
    calib_offset: float
    metadata: dict[str, object]

    @property
    def version(self) -> str:
        """Artifact name and training-data digest, e.g. "difficulty-v3+3f9a1c2e"."""
        return str(self.metadata.get("version", "difficulty-unversioned"))

    def raw_score(self, prompt: str) -> float:
        """Monotone difficulty score (higher = more likely to need the strong model)."""
        feats = general_features(prompt)
        zs = [(x - m) / s for x, m, s in zip(feats, self.feature_mean, self.feature_scale,
                                             strict=True)]
        if not feats[HAS_OPTIONS]:
            # Without answer options there is nothing to compare: no evidence either way, rather
            # than the "very unalike options" that a 0 would read as (training had options only).
            zs[OPTION_SIMILARITY] = 0.0
        z = self.intercept + sum(c * v for c, v in zip(self.general_coef, zs, strict=True))
        vec = tfidf_vector(token_counts(prompt), self.idf)
        coef = self.lexical_coef
        z += sum(v * coef.get(t, 0.0) for t, v in vec.items())
        z_len = (feats[0] - self.length_mean) / self.length_scale
        return ((1.0 - self.length_weight) * z / self.score_scale + self.length_weight * z_len
                + self.option_weight * zs[OPTION_SIMILARITY])

    def predict(self, prompt: str) -> float:
        """Calibrated probability that the strong model is needed (weak wrong, strong right)."""
        t = self.calib_slope * self.raw_score(prompt) + self.calib_offset
        # Numerically safe logistic.
        if t >= 0:
            return 1.0 / (1.0 + math.exp(-t))
        e = math.exp(t)
        return e / (1.0 + e)

    def to_json(self) -> dict[str, object]:
        def r(x: float) -> float:
            return float(f"{x:.6g}")

        return {
            "format": ARTIFACT_FORMAT,
            "general_features": list(GENERAL_FEATURES),
            "feature_mean": [r(x) for x in self.feature_mean],
            "feature_scale": [r(x) for x in self.feature_scale],
            "general_coef": [r(x) for x in self.general_coef],
            "intercept": r(self.intercept),
            "vocab": {t: [r(self.idf[t]), r(self.lexical_coef.get(t, 0.0))] for t in self.idf},
            "score_scale": r(self.score_scale),
            "length_mean": r(self.length_mean),
            "length_scale": r(self.length_scale),
            "length_weight": r(self.length_weight),
            "option_weight": r(self.option_weight),
            "calib_slope": r(self.calib_slope),
            "calib_offset": r(self.calib_offset),
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, data: dict) -> DifficultyModel:
        if data.get("format") != ARTIFACT_FORMAT:
            raise ValueError(f"not an {ARTIFACT_FORMAT} artifact")
        if tuple(data["general_features"]) != GENERAL_FEATURES:
            raise ValueError("artifact was trained with a different feature set")
        vocab = data["vocab"]
        return cls(
            feature_mean=tuple(data["feature_mean"]),
            feature_scale=tuple(data["feature_scale"]),
            general_coef=tuple(data["general_coef"]),
            intercept=float(data["intercept"]),
            idf={t: float(v[0]) for t, v in vocab.items()},
            lexical_coef={t: float(v[1]) for t, v in vocab.items() if v[1] != 0.0},
            score_scale=float(data["score_scale"]),
            length_mean=float(data["length_mean"]),
            length_scale=float(data["length_scale"]),
            length_weight=float(data["length_weight"]),
            option_weight=float(data["option_weight"]),
            calib_slope=float(data["calib_slope"]),
            calib_offset=float(data["calib_offset"]),
            metadata=dict(data.get("metadata", {})),
        )


def load_model(path: Path | str = ARTIFACT_PATH) -> DifficultyModel:
    """Read a predictor artifact (I/O: call once at start-up, not per request)."""
    with open(path, encoding="utf-8") as fh:
        return DifficultyModel.from_json(json.load(fh))


@lru_cache(maxsize=1)
def default_model() -> DifficultyModel:
    """The shipped predictor, loaded once per process."""
    return load_model(ARTIFACT_PATH)


def warm() -> None:
    """Load the shipped predictor and the word-frequency table (call at server start, in a thread)."""
    default_model().predict("warm up")


def predict_difficulty(prompt: str, *, model: DifficultyModel | None = None) -> float:
    """Probability in [0, 1] that `prompt` needs the strong model."""
    return (model or default_model()).predict(prompt)
