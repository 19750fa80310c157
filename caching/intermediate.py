"""Tier 3: intermediate results for questions about a document.

Request convention (`POST /infer` with `document_id`): the prompt holds the document between
`<document>` and `</document>` tags, and the question outside them (before or after):

    {"document_id": "contract-42", "prompt": "<document>\\n...full text...\\n</document>\\nWho pays?"}

Decomposition. The document is split into sections (paragraphs merged up to ~1,500 characters) and
the sections are grouped into chunks of ~6,000 characters. *Document-level* steps depend only on the
document: one "extract" call per chunk condenses it into terse notes, and the notes joined are the
document's digest. The digest is cached in Redis under
`keys.intermediate_key(org, sha256(document), "digest", requested model)` with the policy's cache TTL,
and mirrored in an `IntermediateResult` row (hits, tokens saved). The *question* step then sends the
digest plus the two sections that share the most rare words with the question, instead of the whole
document. The digest comes first in that prompt, so it is also a stable prefix for provider prompt
caching.

Guard (falls back to the full document, `intermediate_bypass:<reason>`): the question asks for the
text itself (quote, verbatim, exact wording, how many times, line numbers, translate/proofread...);
the document is short (decomposing costs more than it saves); the digest plus excerpts is not much
shorter than the document; the organization's cache is off or the request says `no-store`.

Every upstream step goes through `inference.pipeline.complete` with the caller's auth, so
governance (budgets, allowed models), routing and the ledger apply to each of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import math
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
from django.db import close_old_connections
from django.db.models import F

from asahi_project.errors import InvalidRequest
from asahi_project.redis_client import get_async_redis
from caching import keys
from caching.singleflight import single_flight

if TYPE_CHECKING:
    from inference.ledger import LedgerRow
    from inference.pipeline import GatewayCall, GatewayResponse
    from inference.types import ModelInfo

logger = logging.getLogger("asahi.cache")

DOC_OPEN, DOC_CLOSE = "<document>", "</document>"
STEP_DIGEST = "digest"
SECTION_CHARS = 1_500
CHUNK_CHARS = 6_000
MIN_DOCUMENT_CHARS = 2_000  # ~500 tokens: below this a digest cannot pay for itself
MAX_REDUCED_RATIO = 0.6  # digest + excerpts must be at most this share of the document
EXCERPTS = 2
EXCERPT_BUDGET_CHARS = 3_000

_FULL_TEXT_RE = re.compile(
    r"\b(quot\w*|verbatim|word[- ]for[- ]word|exact (wording|words|phrase|text|sentence)|"
    r"how many times|how often does|count (the )?(occurrences|words|mentions)|"
    r"line (number|\d+)|lines? \d+|paragraph \d+|which line|cite|citation|"
    r"translat\w*|proofread\w*|rewrite|reformat|spell\w* (error|mistake)s?|typos?|"
    r"(entire|whole|full) (text|document))\b",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"[a-z0-9][a-z0-9'-]{2,}")
_STOP = frozenset({
    "the", "and", "for", "are", "but", "not", "you", "all", "any", "can", "had", "her", "was",
    "one", "our", "out", "has", "him", "his", "how", "its", "may", "new", "now", "old", "see",
    "two", "who", "did", "does", "what", "when", "where", "which", "while", "with", "this",
    "that", "these", "those", "from", "have", "been", "were", "they", "them", "their", "there",
    "then", "than", "into", "about", "would", "could", "should", "will", "shall", "also", "such",
    "only", "other", "some", "more", "most", "very", "just", "over", "under", "after", "before",
    "between", "each", "your", "document", "text", "question", "answer", "please", "tell", "give",
    "explain", "describe", "according"
})


# --- Pure text logic ----------------------------------------------------------------------------

@dataclass(frozen=True)
class DocumentPrompt:
    document: str
    question: str


def parse_document_prompt(prompt: str) -> DocumentPrompt:
    """Split an `/infer` prompt into document and question; a clear 400 when it does not follow
    the convention."""
    opens, closes = prompt.count(DOC_OPEN), prompt.count(DOC_CLOSE)
    if opens != 1 or closes != 1 or prompt.index(DOC_OPEN) > prompt.index(DOC_CLOSE):
        raise InvalidRequest(
            "with document_id, the prompt must contain the document once between <document> and "
            "</document>, and the question outside the tags", code="invalid_document_prompt",
            param="prompt")
    head, rest = prompt.split(DOC_OPEN, 1)
    document, tail = rest.split(DOC_CLOSE, 1)
    document = document.replace("\r\n", "\n").strip()
    question = f"{head.strip()}\n{tail.strip()}".strip()
    if not document:
        raise InvalidRequest("the document between <document> and </document> is empty",
                             code="invalid_document_prompt", param="prompt")
    if not question:
        raise InvalidRequest("with document_id, the prompt needs a question outside the "
                             "<document> tags", code="invalid_document_prompt", param="prompt")
    return DocumentPrompt(document=document, question=question)


def document_hash(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def split_sections(document: str, *, max_chars: int = SECTION_CHARS) -> list[str]:
    """Paragraphs merged greedily up to `max_chars`; an over-long paragraph is cut at line or
    sentence ends (hard cut as a last resort)."""
    pieces: list[str] = []
    for para in re.split(r"\n\s*\n", document):
        para = para.strip()
        while len(para) > max_chars:
            window = para[:max_chars]
            cut = max(window.rfind("\n"), window.rfind(". "))
            cut = cut + 1 if cut > max_chars // 3 else max_chars
            pieces.append(para[:cut].strip())
            para = para[cut:].strip()
        if para:
            pieces.append(para)
    sections: list[str] = []
    for piece in pieces:
        if sections and len(sections[-1]) + len(piece) + 2 <= max_chars:
            sections[-1] = f"{sections[-1]}\n\n{piece}"
        else:
            sections.append(piece)
    return sections


def chunk_sections(sections: list[str], *, max_chars: int = CHUNK_CHARS) -> list[str]:
    chunks: list[str] = []
    for section in sections:
        if chunks and len(chunks[-1]) + len(section) + 2 <= max_chars:
            chunks[-1] = f"{chunks[-1]}\n\n{section}"
        else:
            chunks.append(section)
    return chunks


def needs_full_document(question: str) -> str | None:
    """Why the question cannot be answered from a digest (None when it can)."""
    m = _FULL_TEXT_RE.search(question)
    return f"question needs the full text ({m.group(0).lower()!r})" if m else None


def _terms(text: str) -> list[str]:
    return [w for w in _WORD_RE.findall(text.lower()) if w not in _STOP]


def relevant_sections(question: str, sections: list[str], *, k: int = EXCERPTS,
                      budget_chars: int = EXCERPT_BUDGET_CHARS) -> list[int]:
    """Indexes (in document order) of up to k sections sharing the most rare question words
    (IDF-weighted overlap), within a character budget."""
    wanted = set(_terms(question))
    if not wanted or not sections:
        return []
    bags = [set(_terms(s)) for s in sections]
    df = Counter(w for bag in bags for w in bag & wanted)
    n = len(sections)
    scored = []
    for i, bag in enumerate(bags):
        score = sum(math.log(1 + n / df[w]) for w in bag & wanted)
        if score > 0:
            scored.append((score, -i))
    chosen: list[int] = []
    used = 0
    for _score, neg in sorted(scored, reverse=True):
        i = -neg
        if len(chosen) >= k:
            break
        if used + len(sections[i]) > budget_chars and chosen:
            continue
        chosen.append(i)
        used += len(sections[i])
    return sorted(chosen)


def extract_prompt(chunk: str) -> str:
    return ("Condense this part of a document into terse notes for answering questions later. "
            "Keep every fact, name, number, date, definition, obligation and relationship; drop "
            "wording, examples and repetition. Bullet points only.\n\n"
            f"<section>\n{chunk}\n</section>")


def question_prompt(*, digest: str, excerpts: list[str], question: str) -> str:
    # Stable part (digest) first: it doubles as a provider prompt-cache prefix across questions.
    parts = ["Notes condensed from a document:\n<notes>\n", digest, "\n</notes>\n"]
    if excerpts:
        parts += ["Relevant excerpts of the document:\n<excerpts>\n",
                  "\n...\n".join(excerpts), "\n</excerpts>\n"]
    parts += ["Answer from the notes and excerpts; if they do not contain the answer, say so.\n"
              f"Question: {question}"]
    return "".join(parts)


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / 4) if text else 0


# --- Digest cache ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Digest:
    text: str
    model: str
    chunks: int
    document_tokens: int
    created: float

    def to_bytes(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Digest:
        return cls(**orjson.loads(raw))


@dataclass
class StepSpend:
    """What the document steps of this request cost (zero when the digest came from cache)."""

    cost: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


def requested_model(call: GatewayCall) -> str:
    """The cache key's model: what the client asked for ("auto" = the router's choice)."""
    return call.routing.model_override or call.chat.model


async def _read_digest(key: str) -> Digest | None:
    try:
        raw = await get_async_redis().get(key)
        return Digest.from_bytes(raw) if raw else None
    except Exception as exc:  # Redis down or a stale format: recompute, never fail
        logger.warning("intermediate_read_failed", extra={"error": type(exc).__name__})
        return None


def _step_call(call: GatewayCall, *, prompt: str, request_id: str,
               max_tokens: int | None, temperature: float | None) -> GatewayCall:
    from inference.pipeline import GatewayCall
    from inference.providers.types import ChatMessage, ChatRequest

    chat = ChatRequest(model=call.chat.model, messages=[ChatMessage(role="user", content=prompt)],
                       max_tokens=max_tokens, temperature=temperature, user=call.chat.user)
    system = [m for m in call.chat.messages if m.role in ("system", "developer")]
    chat.messages[:0] = system
    return GatewayCall(auth=call.auth, request_id=request_id, endpoint=call.endpoint, chat=chat,
                       routing=dataclasses.replace(call.routing), cache_mode=call.cache_mode,
                       client_ip=call.client_ip,
                       # Step prompts share a long document-derived prefix, so their meaning is
                       # dominated by it: only exact reuse is safe for them, never semantic.
                       semantic=False, ledger_adjust=_step_row)


def _step_row(row: LedgerRow) -> None:
    # Without Asahi the client would not have made this call: its cost counts against the
    # question's full-document baseline, and it adds no baseline of its own.
    row.baseline_cost_usd = Decimal(0)


async def _compute_digest(call: GatewayCall, doc: DocumentPrompt, spend: StepSpend) -> Digest:
    from inference.pipeline import complete

    chunks = chunk_sections(split_sections(doc.document))
    notes: list[str] = []
    model = ""
    for i, chunk in enumerate(chunks):
        cap = min(600, max(64, approx_tokens(chunk) // 4))
        step = _step_call(call, prompt=extract_prompt(chunk),
                          request_id=f"{call.request_id}.t3x{i}", max_tokens=cap, temperature=0.0)
        step.cache_mode = "no-store"  # tier 3 stores the digest itself
        resp = await complete(step)
        notes.append((resp.result.content or "").strip())
        model = resp.model.name
        spend.cost += resp.cost
        spend.input_tokens += resp.result.usage.input_tokens
        spend.output_tokens += resp.result.usage.output_tokens
        spend.calls += 1
    return Digest(text="\n".join(n for n in notes if n), model=model, chunks=len(chunks),
                  document_tokens=approx_tokens(doc.document), created=time.time())


def _record_sync(*, org_id: uuid.UUID, doc_hash: str, model: str, created: bool,
                 tokens_saved: int) -> None:
    from caching.models import IntermediateResult

    try:
        if created:
            IntermediateResult.objects.update_or_create(
                organization_id=org_id, document_hash=doc_hash, step=STEP_DIGEST, model=model,
                defaults={"hit_count": 0, "tokens_saved": 0})
        else:
            IntermediateResult.objects.filter(
                organization_id=org_id, document_hash=doc_hash, step=STEP_DIGEST, model=model,
            ).update(hit_count=F("hit_count") + 1, tokens_saved=F("tokens_saved") + tokens_saved)
    except Exception:
        logger.exception("intermediate_record_failed")
    finally:
        close_old_connections()


async def get_digest(call: GatewayCall, doc: DocumentPrompt, spend: StepSpend,
                     ) -> tuple[Digest, bool]:
    """(digest, came from cache). Concurrent first questions on one document compute it once."""
    doc_hash = document_hash(doc.document)
    model = requested_model(call)
    key = keys.intermediate_key(call.auth.org_id, doc_hash, STEP_DIGEST, model)
    if call.cache_mode == "default":
        found = await _read_digest(key)
        if found is not None:
            return found, True
    async with single_flight(call.auth.org_id, f"t3:{doc_hash}:{model}") as leader:
        if not leader and call.cache_mode == "default":
            found = await _read_digest(key)
            if found is not None:
                return found, True
        digest = await _compute_digest(call, doc, spend)
        try:
            await get_async_redis().set(key, digest.to_bytes(),
                                        ex=max(1, call.auth.policy.cache_ttl_seconds))
        except Exception as exc:
            logger.warning("intermediate_store_failed", extra={"error": type(exc).__name__})
        await asyncio.to_thread(_record_sync, org_id=call.auth.org_id, doc_hash=doc_hash,
                                model=model, created=True, tokens_saved=0)
        return digest, False


# --- The /infer entry -----------------------------------------------------------------------------

def _user_prompt(call: GatewayCall) -> str:
    users = [m for m in call.chat.messages if m.role == "user"]
    return users[-1].text() if users else ""


async def _bypass(call: GatewayCall, reason: str, spend: StepSpend | None = None,
                  ) -> GatewayResponse:
    from inference.pipeline import complete

    resp = await complete(call)
    resp.techniques = [*resp.techniques, f"intermediate_bypass:{reason}"]
    if spend and spend.calls:
        resp.cost += spend.cost
    return resp


async def infer_with_document(call: GatewayCall) -> GatewayResponse:
    """Answer a question about a document through tier 3 (see the module docstring)."""
    from inference.pipeline import complete
    from inference.providers.types import Usage

    doc = parse_document_prompt(_user_prompt(call))
    policy = call.auth.policy
    if not policy.cache_enabled or call.cache_mode == "no-store":
        return await _bypass(call, "cache disabled")
    if len(doc.document) < MIN_DOCUMENT_CHARS:
        return await _bypass(call, "document too short")
    why = needs_full_document(doc.question)
    if why:
        return await _bypass(call, why)
    spend = StepSpend()
    digest, cached = await get_digest(call, doc, spend)
    sections = split_sections(doc.document)
    picked = relevant_sections(doc.question, sections)
    excerpts = [sections[i] for i in picked]
    prompt = question_prompt(digest=digest.text, excerpts=excerpts, question=doc.question)
    if approx_tokens(prompt) > MAX_REDUCED_RATIO * digest.document_tokens:
        return await _bypass(call, "digest not much shorter than the document", spend)
    question_call = _step_call(call, prompt=prompt, request_id=call.request_id,
                               max_tokens=call.chat.max_tokens, temperature=call.chat.temperature)
    question_call.started = call.started
    reference = await _reference_model(call)

    def question_row(row: LedgerRow) -> None:
        # The client's own request: ledger it as tier 3 against the full-document baseline, so
        # analytics see the same savings as the response.
        if cached and row.cache_tier == 0:
            row.cache_tier = 3
        if row.status == "ok":
            row.baseline_cost_usd = _full_document_baseline(
                call, reference, output_tokens=row.output_tokens, fallback=row.baseline_cost_usd)

    question_call.ledger_adjust = question_row
    resp = await complete(question_call)
    saved = max(0, digest.document_tokens - approx_tokens(prompt))
    if cached:
        await asyncio.to_thread(_record_sync, org_id=call.auth.org_id,
                                doc_hash=document_hash(doc.document), model=requested_model(call),
                                created=False, tokens_saved=saved)
    usage = resp.result.usage
    resp.result.usage = Usage(input_tokens=usage.input_tokens + spend.input_tokens,
                              cached_input_tokens=usage.cached_input_tokens,
                              cache_write_tokens=usage.cache_write_tokens,
                              output_tokens=usage.output_tokens + spend.output_tokens,
                              reasoning_tokens=usage.reasoning_tokens)
    resp.cost += spend.cost
    resp.baseline_cost = _full_document_baseline(call, reference, output_tokens=usage.output_tokens,
                                                 fallback=resp.baseline_cost)
    if resp.cache_tier == 0 and cached:
        resp.cache_tier = 3
    how = "cached digest" if cached else f"new digest ({digest.chunks} extraction step(s))"
    resp.routing_reason = (f"{resp.routing_reason}; tier 3: answered from the {how} of document "
                           f"{call.document_id} plus {len(excerpts)} of {len(sections)} sections")
    resp.techniques = [*resp.techniques, "intermediate_cache"]
    return resp


async def _reference_model(call: GatewayCall) -> ModelInfo | None:
    from inference.selectors import aget_catalogue

    try:
        return (await aget_catalogue()).get(call.auth.policy.reference_model)
    except Exception:
        return None


def _full_document_baseline(call: GatewayCall, reference: ModelInfo | None, *,
                            output_tokens: int, fallback: Decimal) -> Decimal:
    """The reference model answering from the whole prompt: what tier 3 is saving against."""
    from inference import pricing
    from inference.providers.types import Usage

    if reference is None:
        return fallback
    prompt_tokens = approx_tokens("\n".join(m.text() for m in call.chat.messages))
    return pricing.baseline_cost(reference, Usage(input_tokens=prompt_tokens,
                                                  output_tokens=output_tokens))
