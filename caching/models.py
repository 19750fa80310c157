"""Tier 2 storage: semantic cache entries with their embeddings (pgvector, HNSW, cosine)."""

from __future__ import annotations

from django.db import models
from pgvector.django import HnswIndex, VectorField

from governance.models import Organization

EMBEDDING_DIM = 384


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

    class Meta:
        indexes = [
            models.Index(fields=["organization", "model", "task_type", "embedder"],
                         name="semantic_scope"),
            HnswIndex(name="semantic_hnsw", fields=["embedding"], m=16, ef_construction=64,
                      opclasses=["vector_cosine_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.model}/{self.task_type}: {self.prompt[:60]}"


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
