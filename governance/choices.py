"""Choice sets for governance models (NetBox-style: one place per app)."""

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


# What each role may do includes everything the roles before it may: viewer < member < admin < owner.
ROLE_RANK = {Role.VIEWER.value: 0, Role.MEMBER.value: 1, Role.ADMIN.value: 2, Role.OWNER.value: 3}


class Scope(models.TextChoices):
    INFER = "infer", "Inference"
    ANALYTICS = "analytics", "Analytics"
    ADMIN = "admin", "Admin"
    ALL = "all", "All"


class FailureMode(models.TextChoices):
    CLOSED = "closed", "Fail closed (deny requests)"
    OPEN = "open", "Fail open (allow, unmetered)"


VALID_SCOPES = frozenset(s.value for s in Scope) | {"*"}
