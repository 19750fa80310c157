"""Offline token counting.

OpenAI models: exact BPE counts with `bpe-openai` (MIT; its wheel bundles the cl100k_base and
o200k_base ranks, so nothing is downloaded at run time, unlike tiktoken, which fetches its BPE
files on first use). o200k_base for gpt-4o / gpt-4.1 / gpt-5 / o-series, cl100k_base for older
GPT-4 / GPT-3.5 and embeddings.

Anthropic and Cohere do not publish their tokenizers; we estimate from the cl100k count with a
documented factor (Claude ~1.15x, Command ~1.05x cl100k on English prose; rough, errs high so
budgets are not overrun). Without bpe-openai installed, every count falls back to a character/word
estimate calibrated against cl100k (see CHARS_PER_TOKEN).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache
from typing import Any

ANTHROPIC_FACTOR = 1.15
COHERE_FACTOR = 1.05
# Fallback calibration: mean of chars/4.0 and words*1.33 tracks cl100k within ~10% on prose.
CHARS_PER_TOKEN = 4.0
TOKENS_PER_WORD = 1.33
MESSAGE_OVERHEAD_TOKENS = 4  # role + separators per chat message (OpenAI chat format)

_WORDS = re.compile(r"\S+")
_O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


@lru_cache(maxsize=4)
def _encoding(name: str) -> Any | None:
    try:
        import bpe_openai
    except ImportError:  # pragma: no cover - depends on the environment
        return None
    try:
        return bpe_openai.get_encoding(name)
    except Exception:  # pragma: no cover
        return None


def encoding_name_for(model: str) -> str:
    m = model.lower().split("/")[-1]
    return "o200k_base" if m.startswith(_O200K_PREFIXES) else "cl100k_base"


def estimate_tokens(text: str) -> int:
    """Tokenizer-free estimate (used only when bpe-openai is unavailable)."""
    if not text:
        return 0
    by_chars = len(text) / CHARS_PER_TOKEN
    by_words = len(_WORDS.findall(text)) * TOKENS_PER_WORD
    return math.ceil((by_chars + by_words) / 2)


def count_tokens(text: str, *, model: str = "gpt-4o") -> int:
    """Tokens `text` costs on `model` (exact for OpenAI when bpe-openai is present)."""
    if not text:
        return 0
    m = model.lower()
    provider_factor = 1.0
    if "claude" in m or m.startswith("anthropic"):
        provider_factor = ANTHROPIC_FACTOR
    elif "command" in m or m.startswith("cohere"):
        provider_factor = COHERE_FACTOR
    enc_name = "cl100k_base" if provider_factor != 1.0 else encoding_name_for(model)
    enc = _encoding(enc_name)
    base = len(enc.encode(text)) if enc is not None else estimate_tokens(text)
    return math.ceil(base * provider_factor)
