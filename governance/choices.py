"""Choice sets for governance models (NetBox-style: one place per app)."""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


class Scope(models.TextChoices):
    INFER = "infer", "Inference"
    ANALYTICS = "analytics", "Analytics"
    ADMIN = "admin", "Admin"
    ALL = "all", "All"


class FailureMode(models.TextChoices):
    CLOSED = "closed", "Fail closed (deny requests)"
    OPEN = "open", "Fail open (allow, unmetered)"


VALID_SCOPES = frozenset(s.value for s in Scope) | {"*"}
