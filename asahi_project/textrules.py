"""Which characters Asahi accepts in text it is sent: one set of rules for every endpoint,
serializer, admin form and management command.

Two kinds of field:

- **Free text** (prompts, message contents, comments, embedding input) may hold any Unicode,
  including newlines, tabs and other control characters, which PostgreSQL stores and JSON escapes.
  Refused: NUL, which a PostgreSQL text column cannot hold (one such row used to stop the ledger
  writer), and lone surrogates, which cannot be encoded as UTF-8 at all.
- **Names and identifiers** (organization names, user ids, emails, key names, request, model and
  document ids) are shown in the admin, in mail and in headers, so they also refuse every C0 and
  C1 control character, DEL, the Unicode bidirectional controls (which can make a name read
  backwards, e.g. U+202E) and the line and paragraph separators.

Output that quotes input goes through `escape_unsafe` (mail subjects) or `header_safe` (HTTP
headers); JSON logs are escaped by their serializer.
"""

from __future__ import annotations

import re
from typing import Any

from django.core.exceptions import ValidationError

from asahi_project.errors import InvalidRequest

_NOT_STORABLE = re.compile("[\x00\ud800-\udfff]")
# C0, DEL, C1; the Bidi_Control characters (ALM, LRM, RLM, embeddings, overrides, isolates); the
# line and paragraph separators; lone surrogates.
_NOT_IN_NAMES = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _describe(char: str) -> str:
    if char == "\x00":
        return "a NUL character (U+0000)"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate (U+{ord(char):04X})"
    return f"a control or bidirectional-formatting character (U+{ord(char):04X})"


def text_problem(value: str) -> str | None:
    """Why free text cannot be stored, or None."""
    bad = _NOT_STORABLE.search(value)
    return f"must not contain {_describe(bad.group())}" if bad else None


def name_problem(value: str) -> str | None:
    """Why a name or identifier is refused, or None."""
    bad = _NOT_IN_NAMES.search(value)
    return f"must not contain {_describe(bad.group())}" if bad else None


def check_text(value: str, param: str) -> str:
    problem = text_problem(value)
    if problem:
        raise InvalidRequest(f"{param} {problem}", param=param, code="invalid_characters")
    return value


def check_name(value: str, param: str) -> str:
    problem = name_problem(value)
    if problem:
        raise InvalidRequest(f"{param} {problem}", param=param, code="invalid_characters")
    return value


def find_text_problem(data: Any, path: str = "") -> tuple[str, str] | None:
    """The first (path, problem) in a parsed JSON document, keys included (a JSONB column cannot
    hold NUL either), e.g. ("messages[0].content", "must not contain a NUL character (U+0000)")."""
    if isinstance(data, str):
        problem = text_problem(data)
        return (path, problem) if problem else None
    if isinstance(data, dict):
        for key, value in data.items():
            name = f"{path}.{key}" if path else str(key)
            problem = text_problem(str(key))
            if problem:
                return (path or "body", f"has a key that {problem}")
            found = find_text_problem(value, name)
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = find_text_problem(value, f"{path}[{i}]")
            if found:
                return found
    return None


def check_json_text(data: Any, raw: bytes | None = None) -> None:
    """Refuse a JSON body holding NUL (or a lone surrogate) anywhere, naming the field.

    With the raw body at hand the walk runs only when an escaped NUL could be in it: JSON cannot
    carry a literal NUL, and orjson already refuses lone surrogates, so that test is exact enough
    for the hot path and costs one scan of the bytes."""
    if raw is not None and b"\\u0000" not in raw:
        return
    found = find_text_problem(data)
    if found:
        param, problem = found
        raise InvalidRequest(f"{param} {problem}", param=param, code="invalid_characters")


def validate_text(value: Any) -> None:
    """Django/DRF validator for free-text fields."""
    problem = text_problem(value) if isinstance(value, str) else None
    if problem:
        raise ValidationError(problem, code="invalid_characters")


def validate_name(value: Any) -> None:
    """Django/DRF validator for names and identifiers (model fields, admin forms, serializers)."""
    problem = name_problem(value) if isinstance(value, str) else None
    if problem:
        raise ValidationError(problem, code="invalid_characters")


def escape_unsafe(text: str) -> str:
    """`text` with every character a name may not hold written as an escape, for places that
    show stored text verbatim (mail subjects): rows stored before these rules keep working."""
    return _NOT_IN_NAMES.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def header_safe(text: str, limit: int = 300) -> str:
    """Printable ASCII only, for response headers that quote input: anything else (a newline
    would end the header; a control character makes the server drop the response) is escaped."""
    flat = " ".join(text.split())
    out = "".join(c if " " <= c <= "~" else
                  (f"\\x{ord(c):02x}" if ord(c) < 0x100 else
                   f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
                  for c in flat)
    return out[:limit]
