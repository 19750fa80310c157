"""Token optimizer: shrink a chat request before routing, lossless steps first.

1. Lossless (always): whitespace normalisation (trailing spaces, runs of blanks, 3+ newlines),
   markup normalisation (HTML comments, zero-width characters, &nbsp;, long decorative rules), and
   removal of exactly repeated paragraphs within a message and of an immediately repeated message.
2. Lossy (only if the quality threshold allows it and the request is still over its limit): history
   trimming, dropping the oldest non-system turns first; system messages and the latest message are
   never dropped.

Fenced code blocks (``` or ~~~), inline code, block quotes (lines starting with ">") and
double-quoted text are never modified. The quality-risk score is 0 for lossless-only results and
grows with the share of conversation tokens dropped by trimming.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from routing.tokens import MESSAGE_OVERHEAD_TOKENS, count_tokens

# At or above this quality threshold only lossless techniques run.
LOSSLESS_ONLY_FROM_QUALITY = 4.0
# A repeated paragraph shorter than this is left alone ("Thanks!" twice is not waste worth risk).
MIN_DUPLICATE_CHARS = 40

_PROTECTED = re.compile(
    r"(?P<fence>^[ \t]*(?P<f>```|~~~)[^\n]*\n.*?^[ \t]*(?P=f)[ \t]*$)"
    r"|(?P<quote>(?:^[ \t]*>[^\n]*(?:\n|$))+)"
    r"|(?P<inline>`[^`\n]+`)"
    r"|(?P<dq>\"[^\"\n]{1,2000}\"|“[^”\n]{1,2000}”)",
    re.M | re.S,
)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.S)
_ZERO_WIDTH = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_RULE = re.compile(r"^([-=_*#~])\1{5,}[ \t]*$", re.M)
_INNER_BLANKS = re.compile(r"(?<=\S)[ \t]{2,}")
_LEADING_BLANKS = re.compile(r"^[ \t]{2,}")
_TRAILING = re.compile(r"[ \t]+(?=\n)")
_MANY_NEWLINES = re.compile(r"\n{3,}")


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class OptimizationResult:
    messages: tuple[Message, ...]
    tokens_before: int
    tokens_after: int
    techniques: tuple[str, ...]
    quality_risk: float  # 0 (lossless) .. 1
    fits: bool  # tokens_after <= the limit (if a limit was given)
    dropped_messages: int = 0

    @property
    def saved_tokens(self) -> int:
        return self.tokens_before - self.tokens_after


def count_message_tokens(messages: Sequence[Message], *, model: str) -> int:
    return sum(count_tokens(m.content, model=model) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def _split_protected(text: str) -> list[tuple[bool, str]]:
    """Alternate (protected?, chunk) pieces covering `text` exactly."""
    parts: list[tuple[bool, str]] = []
    pos = 0
    for m in _PROTECTED.finditer(text):
        if m.start() > pos:
            parts.append((False, text[pos : m.start()]))
        parts.append((True, m.group(0)))
        pos = m.end()
    if pos < len(text):
        parts.append((False, text[pos:]))
    return parts


def _normalize_free_text(chunk: str) -> str:
    out = _HTML_COMMENT.sub("", chunk)
    out = _ZERO_WIDTH.sub("", out).replace("&nbsp;", " ").replace("\u00a0", " ")
    out = _RULE.sub(lambda m: m.group(1) * 3, out)
    out = _INNER_BLANKS.sub(" ", out)  # keeps leading indentation (lists, nesting)
    out = _TRAILING.sub("", out)
    return _MANY_NEWLINES.sub("\n\n", out)


def normalize_text(text: str) -> str:
    """Whitespace/markup normalisation outside protected spans."""
    pieces = _split_protected(text)
    parts: list[str] = []
    for i, (prot, chunk) in enumerate(pieces):
        if prot:
            parts.append(chunk)
            continue
        norm = _normalize_free_text(chunk)
        if i > 0 and not pieces[i - 1][1].endswith("\n"):
            # Blanks right after an inline protected span (e.g. a quote) are collapsed too.
            norm = _LEADING_BLANKS.sub(" ", norm)
        parts.append(norm)
    out = "".join(parts)
    return out.strip("\n") if text.strip("\n") != text else out


def remove_repeated_paragraphs(text: str) -> str:
    """Drop later exact copies of a paragraph (blank-line separated) unless protected."""
    pieces = _split_protected(text)
    seen: set[str] = set()
    out: list[str] = []
    for prot, chunk in pieces:
        if prot:
            out.append(chunk)
            continue
        paras = re.split(r"(\n[ \t]*\n)", chunk)
        kept: list[list[str]] = []  # [paragraph, separator after it]
        for i in range(0, len(paras), 2):
            para = paras[i]
            sep = paras[i + 1] if i + 1 < len(paras) else ""
            key = para.strip()
            if len(key) >= MIN_DUPLICATE_CHARS and key in seen:
                # Drop the copy with the separator before it, so spacing stays as it was.
                if kept:
                    kept[-1][1] = sep
                continue
            if key:
                seen.add(key)
            kept.append([para, sep])
        out.append("".join(p + s for p, s in kept))
    return "".join(out)


def optimize(
    *,
    messages: Sequence[Message],
    model: str,
    context_window: int | None = None,
    token_budget: int | None = None,
    reserve_output_tokens: int = 0,
    quality_threshold: float | None = None,
) -> OptimizationResult:
    """Shrink `messages` for `model`; see the module docstring for the order of techniques."""
    before = count_message_tokens(messages, model=model)
    techniques: list[str] = []

    normalized = [Message(m.role, normalize_text(m.content)) for m in messages]
    if any(a.content != b.content for a, b in zip(messages, normalized, strict=True)):
        techniques.append("whitespace_markup_normalization")
    deduped = [Message(m.role, remove_repeated_paragraphs(m.content)) for m in normalized]
    if any(a.content != b.content for a, b in zip(normalized, deduped, strict=True)):
        techniques.append("repeated_block_removal")
    collapsed: list[Message] = []
    for m in deduped:
        if collapsed and collapsed[-1] == m and len(m.content) >= MIN_DUPLICATE_CHARS:
            continue
        collapsed.append(m)
    if len(collapsed) != len(deduped):
        techniques.append("repeated_message_removal")

    limits = [x for x in (token_budget,) if x is not None]
    if context_window is not None:
        limits.append(context_window - reserve_output_tokens)
    limit = min(limits) if limits else None

    current = collapsed
    tokens = count_message_tokens(current, model=model)
    lossless_only = (
        quality_threshold is not None and quality_threshold >= LOSSLESS_ONLY_FROM_QUALITY
    )
    dropped = 0
    dropped_tokens = 0
    if limit is not None and tokens > limit and not lossless_only:
        current, dropped, dropped_tokens = _trim_history(current, limit=limit, model=model)
        if dropped:
            techniques.append("history_trimming")
            tokens = count_message_tokens(current, model=model)

    risk = 0.0
    if dropped:
        risk = min(1.0, 0.1 + 0.9 * dropped_tokens / max(before, 1))
    return OptimizationResult(
        messages=tuple(current),
        tokens_before=before,
        tokens_after=tokens,
        techniques=tuple(techniques),
        quality_risk=round(risk, 3),
        fits=limit is None or tokens <= limit,
        dropped_messages=dropped,
    )


def _trim_history(
    messages: list[Message], *, limit: int, model: str
) -> tuple[list[Message], int, int]:
    """Drop the oldest droppable messages until under `limit` (system and last one stay)."""
    costs = [count_tokens(m.content, model=model) + MESSAGE_OVERHEAD_TOKENS for m in messages]
    total = sum(costs)
    keep = [True] * len(messages)
    last = len(messages) - 1
    dropped = dropped_tokens = 0
    for i, m in enumerate(messages):
        if total <= limit:
            break
        if m.role == "system" or i == last:
            continue
        keep[i] = False
        total -= costs[i]
        dropped += 1
        dropped_tokens += costs[i]
    # Do not leave an assistant turn dangling at the start of the history.
    for i, m in enumerate(messages):
        if not keep[i] or m.role == "system":
            continue
        if m.role == "assistant" and i != last and dropped:
            keep[i] = False
            dropped += 1
            dropped_tokens += costs[i]
        break
    return [m for m, k in zip(messages, keep, strict=True) if k], dropped, dropped_tokens
