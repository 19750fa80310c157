"""Routing state kept in the database: feedback-folded quality estimates and enrichment contexts."""

from __future__ import annotations

from django.db import models

from governance.models import Organization


class QualityEstimate(models.Model):
    """Posterior quality (0-5) of a model on a task type, folded from user feedback.

    Written only by `routing.services.fold_pending_feedback`; the planner reads it (through a
    per-process cache) in place of the catalogue prior for the same (model, task type).
    """

    model = models.CharField(max_length=120)
    task_type = models.CharField(max_length=32, help_text='A task type, or "default".')
    mean = models.FloatField(help_text="Posterior quality, 0-5.")
    count = models.PositiveIntegerField(help_text="Feedback items folded in so far.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "task_type"]
        constraints = [
            models.UniqueConstraint(fields=["model", "task_type"],
                                    name="qualityestimate_model_task"),
            models.CheckConstraint(condition=models.Q(mean__gte=0) & models.Q(mean__lte=5),
                                   name="qualityestimate_mean_range"),
        ]

    def __str__(self) -> str:
        return f"{self.model}/{self.task_type}: {self.mean:.2f} (n={self.count})"


class EnrichmentContext(models.Model):
    """Context the gateway prepends (as a system message) to an organization's requests.

    An empty `user_id` is the organization-wide context; a user's own context is added after it,
    and its glossary entries and preferences win over the organization's.
    """

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE,
                                     related_name="enrichment_contexts")
    user_id = models.CharField(max_length=200, blank=True,
                               help_text="The request's `user` (OpenAI) or `user_id` (/infer); "
                                         "blank means every request of the organization.")
    instructions = models.TextField(blank=True)
    glossary = models.JSONField(default=dict, blank=True,
                                help_text='Term → meaning, e.g. {"ARR": "annual recurring revenue"}')
    preferences = models.JSONField(default=dict, blank=True,
                                   help_text='e.g. {"language": "British English", "tone": "brief"}')
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["organization", "user_id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "user_id"],
                                    name="enrichmentcontext_org_user"),
        ]

    def __str__(self) -> str:
        return f"{self.organization_id}:{self.user_id or '(organization)'}"
