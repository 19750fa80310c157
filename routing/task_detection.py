"""Fast task-type detection from the prompt text (no model; tens of µs per prompt).

The prompt's head (and tail, where instructions often sit after pasted material) is split into
lower-case words once; each task type scores weighted keyword hits, a few multi-word phrases
(substring checks) and a few symbol cues (code fences, arithmetic, LaTeX). The type with the
highest total wins; `confidence` is its share of all cue weight, damped when evidence is thin.
With no cue at all the prompt is `chat` (open question answering / conversation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class TaskKind(StrEnum):
    CODE = "code"
    MATH = "math"
    REASONING = "reasoning"
    SUMMARIZATION = "summarization"
    EXTRACTION = "extraction"
    TRANSLATION = "translation"
    CLASSIFICATION = "classification"
    REWRITING = "rewriting"
    CREATIVE = "creative"
    CHAT = "chat"


TASK_TYPES: tuple[str, ...] = tuple(k.value for k in TaskKind)


@dataclass(frozen=True)
class TaskType:
    name: str
    confidence: float  # 0-1


_LANGUAGES = [
    "french",
    "spanish",
    "german",
    "japanese",
    "chinese",
    "italian",
    "portuguese",
    "korean",
    "russian",
    "arabic",
    "hindi",
    "english",
    "dutch",
    "swedish",
    "polish",
    "turkish",
    "vietnamese",
]

# word -> weight per task kind
_KEYWORDS: dict[TaskKind, dict[str, float]] = {
    TaskKind.CODE: {
        **dict.fromkeys(
            [
                "python",
                "javascript",
                "typescript",
                "java",
                "rust",
                "golang",
                "sql",
                "regex",
                "bash",
                "html",
                "css",
                "kotlin",
                "swift",
                "c++",
                "php",
                "ruby",
                "scala",
                "haskell",
            ],
            2.0,
        ),
        **dict.fromkeys(
            [
                "code",
                "function",
                "bug",
                "debug",
                "compile",
                "traceback",
                "exception",
                "refactor",
                "algorithm",
                "implement",
                "script",
                "endpoint",
                "api",
                "class",
                "def",
                "import",
                "return",
                "const",
                "var",
                "lambda",
                "json-schema",
                "stacktrace",
                "compiler",
                "runtime",
            ],
            1.5,
        ),
    },
    TaskKind.MATH: dict.fromkeys(
        [
            "solve",
            "equation",
            "integral",
            "derivative",
            "calculate",
            "compute",
            "probability",
            "percent",
            "percentage",
            "prime",
            "theorem",
            "matrix",
            "polynomial",
            "algebra",
            "geometry",
            "arithmetic",
            "sum",
            "product",
            "fraction",
            "factorial",
            "logarithm",
        ],
        1.5,
    ),
    TaskKind.REASONING: dict.fromkeys(
        [
            "why",
            "reason",
            "logic",
            "logical",
            "infer",
            "deduce",
            "conclude",
            "implies",
            "argument",
            "puzzle",
            "riddle",
            "compare",
            "tradeoffs",
            "tradeoff",
        ],
        1.5,
    ),
    TaskKind.SUMMARIZATION: dict.fromkeys(
        ["summarize", "summarise", "summary", "tl;dr", "tldr", "condense", "recap", "gist"], 3.0
    ),
    TaskKind.EXTRACTION: dict.fromkeys(["extract", "parse", "entities", "fields"], 2.5),
    TaskKind.TRANSLATION: dict.fromkeys(["translate", "translation", "translating"], 3.5),
    TaskKind.CLASSIFICATION: dict.fromkeys(
        ["classify", "categorize", "categorise", "sentiment"], 3.0
    ),
    TaskKind.REWRITING: dict.fromkeys(
        ["rewrite", "rephrase", "paraphrase", "proofread", "reword", "polish"], 3.0
    ),
    TaskKind.CREATIVE: dict.fromkeys(
        [
            "story",
            "poem",
            "haiku",
            "lyrics",
            "fiction",
            "brainstorm",
            "slogan",
            "imagine",
            "creative",
            "limerick",
            "sonnet",
            "character",
            "plot",
        ],
        2.5,
    ),
}
_WORD_TO_CUES: dict[str, list[tuple[TaskKind, float]]] = {}
for _kind, _words in _KEYWORDS.items():
    for _w, _weight in _words.items():
        _WORD_TO_CUES.setdefault(_w, []).append((_kind, _weight))

_PHRASES: tuple[tuple[str, TaskKind, float], ...] = (
    ("step by step", TaskKind.REASONING, 1.5),
    ("pros and cons", TaskKind.REASONING, 1.5),
    ("which of the following", TaskKind.REASONING, 1.0),
    ("how many", TaskKind.MATH, 1.5),
    ("how much", TaskKind.MATH, 1.0),
    ("key points", TaskKind.SUMMARIZATION, 3.0),
    ("main points", TaskKind.SUMMARIZATION, 3.0),
    ("list all", TaskKind.EXTRACTION, 2.5),
    ("find all", TaskKind.EXTRACTION, 2.5),
    ("pull out", TaskKind.EXTRACTION, 2.5),
    ("as json", TaskKind.EXTRACTION, 2.5),
    ("to json", TaskKind.EXTRACTION, 2.5),
    ("json object", TaskKind.EXTRACTION, 2.0),
    ("named entities", TaskKind.EXTRACTION, 2.5),
    ("fix the grammar", TaskKind.REWRITING, 3.0),
    ("fix grammar", TaskKind.REWRITING, 3.0),
    ("more formal", TaskKind.REWRITING, 3.0),
    ("is this spam", TaskKind.CLASSIFICATION, 3.0),
    ("which category", TaskKind.CLASSIFICATION, 3.0),
    ("stack trace", TaskKind.CODE, 1.5),
    ("unit test", TaskKind.CODE, 1.5),
    *((f"into {lang}", TaskKind.TRANSLATION, 3.5) for lang in _LANGUAGES),
    *((f"in {lang}", TaskKind.TRANSLATION, 1.5) for lang in _LANGUAGES),
)
_CODE_LINE = re.compile(r"[{};]\s*$", re.M)
# Digits joined by an operator read as arithmetic ("2+2", "3*4=12", "7 - 3"). A bare hyphen or
# slash between digits mostly does not: dates (9/11, 2024-05-01), ranges (1939-1945), identifiers
# (order 7-123), ratios (80/20, 24/7). Those count only right after a request to work something out
# ("what is 12/4?", "convert 3/8"), or as fractions when there are two ("3/4 or 2/3?"). A prompt
# taken for maths gets maths' stricter semantic-cache thresholds and maths' quality bar in routing,
# so a date alone must not make it one.
_ARITHMETIC = re.compile(
    r"\d\s*[+*^\u00d7\u00f7=]\s*\d"
    r"|\d\s+[-/]\s+\d"
    r"|\b(?:what is|what's|calculate|compute|solve|evaluate|simplify)\s+\(?-?\d+(?:\.\d+)?\s*[-/]\s*\(?\d"
    r"|\b(?:convert|add|subtract|multiply|divide|reduce)\s+\d{1,3}/\d{1,3}\b",
    re.IGNORECASE,
)
_FRACTION = re.compile(r"(?<![\d/.])\d{1,3}/\d{1,3}(?![\d/])")  # not a part of 5/1/2024
_LATEX = re.compile(r"\\frac|\\sqrt|\\int|\\sum|[∫∑√π≤≥]")
_WORD = re.compile(r"[a-z][a-z+;#\-]*")

_HEAD_CHARS = 1500
_TAIL_CHARS = 500
_MIN_EVIDENCE = 2.0  # below this total weight the confidence is scaled down


def detect_task_type(prompt: str) -> TaskType:
    """Classify a prompt into one of TASK_TYPES; falls back to chat with low confidence."""
    if len(prompt) > _HEAD_CHARS + _TAIL_CHARS:
        text = prompt[:_HEAD_CHARS] + "\n" + prompt[-_TAIL_CHARS:]
    else:
        text = prompt
    lower = text.lower()
    scores: dict[TaskKind, float] = {}
    hits: dict[str, int] = {}
    for word in _WORD.findall(lower):
        if word in _WORD_TO_CUES:
            hits[word] = hits.get(word, 0) + 1
    for word, count in hits.items():
        # Diminishing returns: a prompt repeating one cue should not dominate.
        boost = min(count, 3) ** 0.5
        for kind, weight in _WORD_TO_CUES[word]:
            scores[kind] = scores.get(kind, 0.0) + weight * boost
    for phrase, kind, weight in _PHRASES:
        if phrase in lower:
            scores[kind] = scores.get(kind, 0.0) + weight
    if "```" in text:
        scores[TaskKind.CODE] = scores.get(TaskKind.CODE, 0.0) + 3.0
    if _CODE_LINE.search(text):
        scores[TaskKind.CODE] = scores.get(TaskKind.CODE, 0.0) + 0.5
    if _ARITHMETIC.search(text) or len(_FRACTION.findall(text)) >= 2:
        scores[TaskKind.MATH] = scores.get(TaskKind.MATH, 0.0) + 2.0
    if _LATEX.search(text):
        scores[TaskKind.MATH] = scores.get(TaskKind.MATH, 0.0) + 2.5
    if not scores:
        return TaskType(name=TaskKind.CHAT.value, confidence=0.5)
    best = max(scores, key=lambda k: scores[k])
    total = sum(scores.values())
    confidence = scores[best] / total * min(1.0, scores[best] / _MIN_EVIDENCE)
    return TaskType(name=best.value, confidence=round(confidence, 3))
