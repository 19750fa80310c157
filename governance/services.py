"""Governance writes. Every change writes its AuditEvent in the same transaction (Zulip's do_* pattern)."""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from asahi_project.client_ip import client_ip
from asahi_project.errors import InvalidRequest, NotFound
from asahi_project.netguard import UnsafeURL, resolve_public
from asahi_project.request_id import current_request_id
from asahi_project.textrules import check_name
from governance.choices import VALID_SCOPES, Role, Scope
from governance.keys import generate_raw_key, hash_key
from governance.models import ApiKey, AuditEvent, Membership, Organization, Policy
from governance.selectors import auth_cache

logger = logging.getLogger("asahi.governance")
User = get_user_model()


def audit_log(
    *,
    action: str,
    actor: str,
    organization: Organization | uuid.UUID | None = None,
    target_type: str = "",
    target_id: str = "",
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    org_id = organization.pk if isinstance(organization, Organization) else organization
    return AuditEvent.objects.create(
        organization_id=org_id,
        actor=actor[:200],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:200],
        ip=ip,
        request_id=current_request_id(),
        details=details or {},
    )


def audit_auth_failure(*, request: Any, reason: str) -> None:
    header = request.META.get("HTTP_AUTHORIZATION", "") if hasattr(request, "META") else ""
    token = header.split(" ", 1)[1].strip() if " " in header else ""
    # Never store the presented secret: only its public prefix, if it looks like a key.
    shown = token[:14] if token.startswith("ask_") else ("(none)" if not token else "(malformed)")
    audit_log(action="auth_failure", actor="anonymous", ip=client_ip(request),
              details={"reason": reason, "key_prefix": shown, "path": request.path})


def actor_for_user(user: Any) -> str:
    return f"user:{user.get_username()}" if user is not None else "system"


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str


def parse_scopes(scopes: list[str] | str | None) -> list[str]:
    if scopes is None:
        return [Scope.ALL.value]
    items = scopes.split(",") if isinstance(scopes, str) else list(scopes)
    cleaned = [s.strip() for s in items if s.strip()]
    bad = sorted(set(cleaned) - VALID_SCOPES)
    if bad:
        raise InvalidRequest(
            f"unknown scope(s) {', '.join(bad)}; valid: {', '.join(sorted(VALID_SCOPES))}",
            param="scopes",
        )
    return ["all" if s == "*" else s for s in cleaned] or [Scope.ALL.value]


@transaction.atomic
def organization_create(*, name: str, actor: str, ip: str | None = None) -> Organization:
    name = name.strip()
    if not name:
        raise InvalidRequest("organization name must not be empty", param="org_name")
    if len(name) > 120:
        raise InvalidRequest("organization name must be at most 120 characters", param="org_name")
    check_name(name, "org_name")
    if Organization.objects.filter(name__iexact=name).exists():
        raise InvalidRequest(f"organization {name!r} already exists", code="organization_exists",
                             param="org_name", status=409)
    org = Organization.objects.create(name=name)
    Policy.objects.create(organization=org)
    audit_log(action="organization_created", actor=actor, organization=org,
              target_type="organization", target_id=str(org.pk), ip=ip, details={"name": name})
    return org


@transaction.atomic
def api_key_issue(
    *,
    organization: Organization,
    actor: str,
    name: str = "",
    scopes: list[str] | str | None = None,
    expires_in_days: int | None = None,
    expires_at: datetime | None = None,
    created_by: Any = None,
    ip: str | None = None,
    daily_budget_usd: Decimal | None = None,
    monthly_budget_usd: Decimal | None = None,
    rpm_limit: int | None = None,
    tpm_limit: int | None = None,
    allowed_models: list[str] | None = None,
) -> IssuedKey:
    scope_list = parse_scopes(scopes)
    if expires_in_days is not None:
        if expires_in_days <= 0:
            raise InvalidRequest("expires_in_days must be positive", param="expires_in_days")
        expires_at = timezone.now() + timedelta(days=expires_in_days)
    raw, prefix = generate_raw_key()
    key = ApiKey.objects.create(
        organization=organization, name=name, prefix=prefix, key_hash=hash_key(raw),
        scopes=scope_list, expires_at=expires_at, created_by=created_by,
        daily_budget_usd=daily_budget_usd, monthly_budget_usd=monthly_budget_usd,
        rpm_limit=rpm_limit, tpm_limit=tpm_limit, allowed_models=allowed_models or [],
    )
    audit_log(action="api_key_created", actor=actor, organization=organization,
              target_type="api_key", target_id=prefix, ip=ip,
              details={"scopes": scope_list, "name": name,
                       "expires_at": expires_at.isoformat() if expires_at else None})
    return IssuedKey(key=key, raw=raw)


@transaction.atomic
def api_key_revoke(*, prefix: str, actor: str, ip: str | None = None) -> ApiKey:
    key = ApiKey.objects.select_for_update().filter(prefix=prefix).first()
    if key is None:
        raise NotFound(f"API key {prefix} not found", code="api_key_not_found")
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_log(action="api_key_revoked", actor=actor, organization=key.organization_id,
                  target_type="api_key", target_id=prefix, ip=ip)
    transaction.on_commit(lambda: auth_cache.invalidate(prefix=prefix))
    return key


@transaction.atomic
def api_key_rotate(*, prefix: str, actor: str, ip: str | None = None) -> IssuedKey:
    """Revoke a key and issue a replacement with the same scopes, limits and expiry."""
    old = api_key_revoke(prefix=prefix, actor=actor, ip=ip)
    issued = api_key_issue(
        organization=old.organization, actor=actor, name=old.name, scopes=old.scopes,
        expires_at=old.expires_at, ip=ip, daily_budget_usd=old.daily_budget_usd,
        monthly_budget_usd=old.monthly_budget_usd, rpm_limit=old.rpm_limit,
        tpm_limit=old.tpm_limit, allowed_models=old.allowed_models,
    )
    audit_log(action="api_key_rotated", actor=actor, organization=old.organization_id,
              target_type="api_key", target_id=prefix, ip=ip,
              details={"replacement": issued.key.prefix})
    return issued


POLICY_FIELDS = (
    "daily_budget_usd", "monthly_budget_usd", "max_cost_per_request_usd", "allowed_models",
    "allowed_providers", "rpm_limit", "tpm_limit", "cache_enabled", "cache_ttl_seconds",
    "cache_max_temperature", "semantic_cache_enabled", "semantic_threshold", "pii_redaction",
    "retention_days", "redis_failure_mode", "reference_model", "alert_emails",
    "alert_webhook_url", "freeze_keys_on_anomaly",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    return value


@transaction.atomic
def policy_update(*, organization: Organization, actor: str, changes: dict[str, Any],
                  ip: str | None = None) -> Policy:
    policy, _ = Policy.objects.select_for_update().get_or_create(organization=organization)
    diff: dict[str, Any] = {}
    for field, value in changes.items():
        if field not in POLICY_FIELDS:
            raise InvalidRequest(f"unknown policy field {field!r}", param=field)
        if field == "alert_webhook_url" and value:
            try:  # the gateway must not be made to call its own network (SSRF)
                resolve_public(value)
            except UnsafeURL as exc:
                raise InvalidRequest(f"alert_webhook_url refused: {exc}", param=field,
                                     code="unsafe_url") from exc
        old = getattr(policy, field)
        if old != value:
            diff[field] = {"old": _jsonable(old), "new": _jsonable(value)}
            setattr(policy, field, value)
    if diff:
        policy.full_clean()
        policy.save()
        audit_log(action="policy_updated", actor=actor, organization=organization,
                  target_type="policy", target_id=str(organization.pk), ip=ip, details=diff)
    org_id = organization.pk
    transaction.on_commit(lambda: auth_cache.invalidate(org_id=org_id))
    return policy


@dataclass(frozen=True)
class SignupResult:
    organization: Organization
    issued: IssuedKey


def signup(*, org_name: str, user_id: str, email: str | None, ip: str | None,
           password: str | None = None) -> SignupResult:
    """Self-serve signup: organization, its owner and a first key.

    From the API the owner is a Django user without a usable password; from the console
    (``password`` given, already checked by the password validators) a new user who can log in.
    A console signup never adopts an existing user, so it cannot set someone else's password."""
    username = user_id.strip()
    if not username:
        raise InvalidRequest("user_id must not be empty", param="user_id")
    try:
        with transaction.atomic():
            org = organization_create(name=org_name, actor=f"signup:{username}", ip=ip)
            if password is not None:
                if User.objects.filter(username__iexact=username).exists():
                    raise InvalidRequest("an account with this email already exists",
                                         code="user_exists", param="email", status=409)
                user = User.objects.create_user(username=username, email=email or "",
                                                password=password)
            else:
                user, _ = User.objects.get_or_create(username=username,
                                                     defaults={"email": email or ""})
            if Membership.objects.filter(user=user).exists():
                # The JSON API's contract is an organization and a key for any user_id, and
                # scripts sign up several organizations with one; a console user belongs to one
                # organization, so the new one starts without a console owner (the admin can
                # add one) and the audit says so.
                audit_log(action="owner_membership_skipped", actor=f"user:{username}",
                          organization=org, target_type="membership", target_id=username,
                          ip=ip, details={"reason": "user belongs to another organization"})
            else:
                Membership.objects.create(organization=org, user=user, role=Role.OWNER)
                audit_log(action="membership_created", actor=f"user:{username}",
                          organization=org, target_type="membership", target_id=username,
                          ip=ip, details={"role": Role.OWNER.value})
            issued = api_key_issue(organization=org, actor=f"user:{username}", name="signup key",
                                   scopes=["all"], created_by=user, ip=ip)
    except IntegrityError as exc:
        raise InvalidRequest("organization or user already exists", code="conflict",
                             status=409) from exc
    if email:
        transaction.on_commit(lambda: _send_welcome(email=email, org_name=org.name,
                                                    prefix=issued.key.prefix))
    return SignupResult(organization=org, issued=issued)


def _send_welcome(*, email: str, org_name: str, prefix: str) -> None:
    try:
        send_mail(
            subject="Welcome to Asahi",
            message=(
                f"Your organization {org_name} is ready.\n\nYour API key starts with {prefix}; "
                "it was shown once at signup and is not stored in readable form.\n"
                "Point your OpenAI SDK's base_url at your Asahi server's /v1 to start saving.\n"
            ),
            from_email=settings.DEFAULT_FROM_EMAIL,
            recipient_list=[email],
            fail_silently=False,
        )
    except Exception:  # email is best effort; signup already committed
        logger.warning("welcome_email_failed", extra={"email_domain": email.split("@")[-1]})


# --- Console members ------------------------------------------------------------------------------

def _lock_owners(organization: Organization) -> int:
    """Lock the organization row (serializes role changes in it) and count its owners."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    return Membership.objects.filter(organization=organization, role=Role.OWNER).count()


def _member_of(organization: Organization, membership_id: int) -> Membership:
    member = (Membership.objects.select_related("user").select_for_update(of=("self",))
              .filter(pk=membership_id, organization=organization).first())
    if member is None:  # another organization's member looks exactly like a missing one
        raise NotFound("member not found", code="member_not_found")
    return member


@dataclass(frozen=True)
class MemberAdded:
    membership: Membership
    created_user: bool


@transaction.atomic
def membership_add(*, organization: Organization, email: str, role: str, actor: str,
                   ip: str | None = None) -> MemberAdded:
    """Add a user to the organization by email. A new address gets a new user with a random
    password (the caller mails a link to choose one); an existing user is added only if they are
    not in an organization yet, since a user belongs to exactly one."""
    if role not in Role.values:
        raise InvalidRequest(f"unknown role {role!r}", param="role")
    email = email.strip().lower()
    check_name(email, "email")
    user = User.objects.filter(username__iexact=email).first()
    created = user is None
    if user is None:
        # A usable but unknown password: Django's reset flow only serves usable passwords.
        user = User.objects.create_user(username=email, email=email,
                                        password=secrets.token_urlsafe(32))
    elif Membership.objects.filter(user=user).exists():
        raise InvalidRequest("this user already belongs to an organization", code="member_exists",
                             param="email", status=409)
    member = Membership.objects.create(organization=organization, user=user, role=role)
    audit_log(action="membership_created", actor=actor, organization=organization,
              target_type="membership", target_id=user.get_username(), ip=ip,
              details={"role": role, "new_user": created})
    return MemberAdded(membership=member, created_user=created)


@transaction.atomic
def membership_set_role(*, organization: Organization, membership_id: int, role: str, actor: str,
                        ip: str | None = None) -> Membership:
    if role not in Role.values:
        raise InvalidRequest(f"unknown role {role!r}", param="role")
    owners = _lock_owners(organization)
    member = _member_of(organization, membership_id)
    if member.role == role:
        return member
    if member.role == Role.OWNER and owners <= 1:
        raise InvalidRequest("an organization needs an owner: make someone else owner first",
                             code="last_owner", param="role", status=409)
    old = member.role
    member.role = role
    member.save(update_fields=["role"])
    audit_log(action="membership_role_changed", actor=actor, organization=organization,
              target_type="membership", target_id=member.user.get_username(), ip=ip,
              details={"old": old, "new": role})
    return member


@transaction.atomic
def membership_remove(*, organization: Organization, membership_id: int, actor: str,
                      ip: str | None = None) -> None:
    owners = _lock_owners(organization)
    member = _member_of(organization, membership_id)
    if member.role == Role.OWNER and owners <= 1:
        raise InvalidRequest("an organization needs an owner: make someone else owner first",
                             code="last_owner", status=409)
    username = member.user.get_username()
    member.delete()
    audit_log(action="membership_removed", actor=actor, organization=organization,
              target_type="membership", target_id=username, ip=ip,
              details={"role": member.role})


# The console's playground calls the gateway with this organization key (scope infer). Its secret is
# discarded at issue: the console resolves it by prefix on the server and never shows or needs it.
PLAYGROUND_KEY_NAME = "console playground"


@transaction.atomic
def playground_key(*, organization: Organization, actor: str, created_by: Any = None,
                   ip: str | None = None) -> ApiKey:
    """The organization's live playground key, issued (and audited) on first use or after a
    revocation. The organization row is locked so that two first requests issue one key."""
    Organization.objects.select_for_update().filter(pk=organization.pk).first()
    key = (ApiKey.objects.filter(organization=organization, name=PLAYGROUND_KEY_NAME,
                                 revoked_at__isnull=True)
           .exclude(expires_at__lte=timezone.now()).order_by("created_at").first())
    if key is None:
        key = api_key_issue(organization=organization, actor=actor, name=PLAYGROUND_KEY_NAME,
                            scopes=["infer"], created_by=created_by, ip=ip).key
    return key
