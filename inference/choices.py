from django.db import models


class ProviderKind(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    COHERE = "cohere", "Cohere"
    OPENAI_COMPATIBLE = "openai-compatible", "OpenAI-compatible"


class ModelKind(models.TextChoices):
    CHAT = "chat", "Chat"
    EMBEDDING = "embedding", "Embedding"


class EventStatus(models.TextChoices):
    OK = "ok", "OK"
    DENIED = "denied", "Denied by governance"
    RATE_LIMITED = "rate_limited", "Rate limited"
    ERROR = "error", "Upstream or internal error"
    CLIENT_ERROR = "client_error", "Bad request"
    CANCELLED = "cancelled", "Client disconnected"


class CacheTier(models.IntegerChoices):
    MISS = 0, "miss"
    EXACT = 1, "exact"
    SEMANTIC = 2, "semantic"
    INTERMEDIATE = 3, "intermediate"


class DeadLetterKind(models.TextChoices):
    EVENT = "event", "Ledger row"
    PAYLOAD = "payload", "Stored prompt and answer (the ledger row itself was written)"
    AUDIT = "audit", "Audit row"
