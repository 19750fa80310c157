"""Settings: API keys, members and roles, policy, alert recipients.

Thin views over governance services and selectors: each action checks the role it needs, acts on
the user's own organization only (objects are looked up inside it, so another organization's key
or member is a 404), and audits with the user as actor. A failed form re-renders the page with the
field's error and what was typed (status 400); a new key's secret is rendered once, never put in
the session or a redirect.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_POST

from asahi_project.client_ip import client_ip
from asahi_project.errors import AsahiError
from console.access import current_membership, current_organization, has_role, role_required
from console.forms import AlertsForm, ApiKeyIssueForm, MemberAddForm, MemberRoleForm, PolicyForm
from governance import selectors, services
from governance.models import Policy

logger = logging.getLogger("asahi.console")
POLICY_FORM_FIELDS = tuple(PolicyForm.base_fields)
ALERT_FORM_FIELDS = tuple(AlertsForm.base_fields)


def _actor(request: HttpRequest) -> str:
    return services.actor_for_user(request.user)


def _platform_choices(policy: Policy) -> tuple[list[str], list[str]]:
    """Models and providers the platform offers, plus any the policy already names (so a model
    the operator later disabled stays visible and can be unticked)."""
    from inference.selectors import get_catalogue

    catalogue = get_catalogue()
    models = sorted(set(catalogue.models) | set(policy.allowed_models))
    providers = sorted({m.provider for m in catalogue.models.values()}
                       | set(policy.allowed_providers))
    return models, providers


def _policy(request: HttpRequest) -> Policy:
    policy, _ = Policy.objects.get_or_create(organization=current_organization(request))
    return policy


def _policy_form(request: HttpRequest, policy: Policy, data: Any = None) -> PolicyForm:
    models, providers = _platform_choices(policy)
    initial = {name: getattr(policy, name) for name in POLICY_FORM_FIELDS}
    return PolicyForm(data, initial=initial, models=models, providers=providers)


def _alerts_form(policy: Policy, data: Any = None) -> AlertsForm:
    initial = {"alert_emails": "\n".join(policy.alert_emails),
               "alert_webhook_url": policy.alert_webhook_url,
               "freeze_keys_on_anomaly": policy.freeze_keys_on_anomaly}
    return AlertsForm(data, initial=initial)


def _page(request: HttpRequest, *, status: int = 200, **override: Any) -> HttpResponse:
    membership = current_membership(request)
    org = current_organization(request)
    policy = _policy(request)
    context: dict[str, Any] = {
        "keys": selectors.api_keys_for_org(organization=org),
        "members": selectors.members_of(organization=org),
        "policy": policy,
        "can_admin": has_role(membership, "admin"),
        "can_own": has_role(membership, "owner"),
        "key_form": ApiKeyIssueForm(),
        "member_form": MemberAddForm(),
        "policy_form": _policy_form(request, policy),
        "alerts_form": _alerts_form(policy),
        "role_choices": MemberRoleForm.base_fields["role"].choices,  # type: ignore[attr-defined]
    }
    context.update(override)
    return render(request, "console/settings.html", context, status=status)


@role_required("viewer")
def settings_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


# --- API keys ---------------------------------------------------------------------------------

@require_POST
@role_required("admin")
def key_issue(request: HttpRequest) -> HttpResponse:
    form = ApiKeyIssueForm(request.POST)
    if not form.is_valid():
        return _page(request, status=400, key_form=form)
    issued = services.api_key_issue(
        organization=current_organization(request), actor=_actor(request),
        name=form.cleaned_data["name"], scopes=form.cleaned_data["scopes"],
        expires_in_days=form.cleaned_data["expires_in_days"], created_by=request.user,
        ip=client_ip(request))
    return _page(request, raw_key=issued.raw, new_key=issued.key)


@require_POST
@role_required("admin")
def key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    key = selectors.api_key_in_org(organization=current_organization(request), prefix=prefix)
    services.api_key_revoke(prefix=key.prefix, actor=_actor(request), ip=client_ip(request))
    messages.success(request, f"Key {key.prefix} revoked; it stops working within seconds.")
    return redirect(reverse("console:settings") + "#keys")


@require_POST
@role_required("admin")
def key_rotate(request: HttpRequest, prefix: str) -> HttpResponse:
    key = selectors.api_key_in_org(organization=current_organization(request), prefix=prefix)
    if key.revoked_at is not None:
        messages.error(request, f"Key {key.prefix} is already revoked; issue a new key instead.")
        return redirect(reverse("console:settings") + "#keys")
    issued = services.api_key_rotate(prefix=key.prefix, actor=_actor(request),
                                     ip=client_ip(request))
    return _page(request, raw_key=issued.raw, new_key=issued.key, rotated=key.prefix)


# --- Members ----------------------------------------------------------------------------------

def _send_invite(request: HttpRequest, user: Any, org_name: str) -> None:
    """A link to choose a password (Django's reset token), sent after the membership commits."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    link = request.build_absolute_uri(
        reverse("console:password_reset_confirm", kwargs={"uidb64": uid, "token": token}))
    inviter = request.user.get_username()
    email = user.email

    def send() -> None:
        try:
            send_mail(subject=f"You have been added to {org_name} on Asahi",
                      message=(f"{inviter} added you to the organization {org_name} on Asahi.\n\n"
                               f"Choose your password here to log in:\n{link}\n"),
                      from_email=django_settings.DEFAULT_FROM_EMAIL, recipient_list=[email])
        except Exception:  # the membership is committed; they can still use "forgot password"
            logger.warning("invite_email_failed", extra={"email_domain": email.split("@")[-1]})

    transaction.on_commit(send)


@require_POST
@role_required("owner")
def member_add(request: HttpRequest) -> HttpResponse:
    form = MemberAddForm(request.POST)
    if form.is_valid():
        org = current_organization(request)
        try:
            with transaction.atomic():
                added = services.membership_add(
                    organization=org, email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"], actor=_actor(request), ip=client_ip(request))
                if added.created_user:
                    _send_invite(request, added.membership.user, org.name)
        except AsahiError as exc:
            form.add_error("email" if exc.param == "email" else None, exc.message)
        else:
            how = "An email with a link to choose a password is on its way." \
                if added.created_user else "They can log in with their password."
            messages.success(request, f"Added {form.cleaned_data['email']} as "
                                      f"{form.cleaned_data['role']}. {how}")
            return redirect(reverse("console:settings") + "#members")
    return _page(request, status=400, member_form=form)


@require_POST
@role_required("owner")
def member_role(request: HttpRequest, membership_id: int) -> HttpResponse:
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose one of the roles: owner, admin, member, viewer.")
        return _page(request, status=400)
    try:
        member = services.membership_set_role(
            organization=current_organization(request), membership_id=membership_id,
            role=form.cleaned_data["role"], actor=_actor(request), ip=client_ip(request))
    except AsahiError as exc:
        if exc.status == 404:
            raise
        messages.error(request, exc.message)
        return _page(request, status=exc.status)
    messages.success(request, f"{member.user.get_username()} is now {member.role}.")
    return redirect(reverse("console:settings") + "#members")


@require_POST
@role_required("owner")
def member_remove(request: HttpRequest, membership_id: int) -> HttpResponse:
    try:
        services.membership_remove(organization=current_organization(request),
                                   membership_id=membership_id, actor=_actor(request),
                                   ip=client_ip(request))
    except AsahiError as exc:
        if exc.status == 404:
            raise
        messages.error(request, exc.message)
        return _page(request, status=exc.status)
    messages.success(request, "Member removed.")
    return redirect(reverse("console:settings") + "#members")


# --- Policy and alerts ------------------------------------------------------------------------

def _update_policy(request: HttpRequest, form: Any, form_name: str, fields: tuple[str, ...],
                   what: str) -> HttpResponse:
    changes = {name: form.cleaned_data[name] for name in fields if name in form.cleaned_data}
    try:
        services.policy_update(organization=current_organization(request), actor=_actor(request),
                               changes=changes, ip=client_ip(request))
    except AsahiError as exc:
        # What only the service can check (e.g. a webhook host that resolves to a private
        # address) is the named field's error, with what the user typed kept.
        if exc.status >= 500:
            raise
        form.add_error(exc.param if exc.param in form.fields else None, exc.message)
        return _page(request, status=400, **{form_name: form})
    messages.success(request, f"{what} saved.")
    return redirect(reverse("console:settings") + ("#policy" if what == "Policy" else "#alerts"))


@require_POST
@role_required("admin")
def policy_edit(request: HttpRequest) -> HttpResponse:
    form = _policy_form(request, _policy(request), request.POST)
    if not form.is_valid():
        return _page(request, status=400, policy_form=form)
    return _update_policy(request, form, "policy_form", POLICY_FORM_FIELDS, "Policy")


@require_POST
@role_required("admin")
def alerts_edit(request: HttpRequest) -> HttpResponse:
    form = _alerts_form(_policy(request), request.POST)
    if not form.is_valid():
        return _page(request, status=400, alerts_form=form)
    return _update_policy(request, form, "alerts_form", ALERT_FORM_FIELDS, "Alert settings")
