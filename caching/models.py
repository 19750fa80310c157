"""Tier 2 storage: semantic cache entries with their embeddings (pgvector, cosine).

Every lookup is confined to one scope (organization, model, task type, embedder), identified by
`scope_key`. Small scopes are scanned exactly; a scope that outgrows the exact-scan limit gets its
own partial HNSW index (`SemanticScopeIndex`), so approximate search never has to post-filter a
global graph full of other tenants' neighbours.
"""

from __future__ import annotations

import hashlib
import uuid

from django.db import models
from pgvector.django import VectorField

from governance.models import Organization

EMBEDDING_DIM = 384
SCOPE_KEY_LENGTH = 16


def scope_key_of(*, organization_id: uuid.UUID | str, model: str, task_type: str,
                 embedder: str) -> str:
    """First 16 hex digits of sha256("org|model|task|embedder").

    Must stay identical to the `caching_semantic_scope_key` trigger (migration 0003), which sets
    the column on every insert path (ORM, bulk, COPY); a test holds the two together."""
    raw = f"{organization_id}|{model}|{task_type}|{embedder}".encode()
    return hashlib.sha256(raw).hexdigest()[:SCOPE_KEY_LENGTH]


class SemanticEntry(models.Model):
    """One cached answer, found by meaning. Every lookup filters on the full scope: organization,
    model, task type and embedder version, so a model or embedder change never serves stale
    neighbours and no tenant ever sees another's entries."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    model = models.CharField(max_length=120)
    task_type = models.CharField(max_length=32)
    embedder = models.CharField(max_length=120, help_text="name:version of the embedding model")
    embedding = VectorField(dimensions=EMBEDDING_DIM)
    prompt = models.TextField()
    answer = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    hit_count = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    # Set by a DB trigger from the four scope columns (see scope_key_of); save() fills it too so
    # the in-memory object is right before a refresh.
    scope_key = models.CharField(max_length=SCOPE_KEY_LENGTH, default="", editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["scope_key"], name="semantic_scope_key"),
        ]

    def __str__(self) -> str:
        return f"{self.model}/{self.task_type}: {self.prompt[:60]}"

    def save(self, *args: object, **kwargs: object) -> None:
        self.scope_key = scope_key_of(organization_id=self.organization_id, model=self.model,
                                      task_type=self.task_type, embedder=self.embedder)
        super().save(*args, **kwargs)  # type: ignore[arg-type]


class SemanticScopeIndex(models.Model):
    """A partial HNSW index over one large scope (`WHERE scope_key = '<key>'`).

    Rows are written by `caching.services.scope_index_create` after the index is valid, so a row
    here means lookups of that scope may take the approximate path."""

    scope_key = models.CharField(max_length=SCOPE_KEY_LENGTH, unique=True)
    index_name = models.CharField(max_length=63, unique=True)
    organization_id = models.UUIDField(help_text="for operators; the index follows scope_key")
    model = models.CharField(max_length=120)
    task_type = models.CharField(max_length=32)
    embedder = models.CharField(max_length=120)
    rows_at_creation = models.PositiveIntegerField()
    build_seconds = models.FloatField(default=0.0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.index_name} ({self.rows_at_creation} rows)"


class IntermediateResult(models.Model):
    """Tier 3 bookkeeping mirror (values live in Redis): which document steps are cached, for stats."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    document_hash = models.CharField(max_length=64)
    step = models.CharField(max_length=64)
    model = models.CharField(max_length=120)
    tokens_saved = models.PositiveIntegerField(default=0)
    hit_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "document_hash", "step", "model"],
                                    name="intermediate_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.document_hash[:12]}:{self.step}:{self.model}"
