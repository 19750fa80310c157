"""Console forms: they validate what a person typed and name the wrong field; the writes themselves
are governance services (a form never saves a model)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation

from asahi_project.textrules import validate_name
from governance.choices import Role, Scope


class SignupForm(forms.Form):
    org_name = forms.CharField(label="Organization name", max_length=120, validators=[validate_name])
    email = forms.EmailField(label="Email", max_length=150, validators=[validate_name],
                             help_text="You log in with this address.")
    password1 = forms.CharField(label="Password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                help_text=password_validation.password_validators_help_text_html())
    password2 = forms.CharField(label="Password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def clean_email(self) -> str:
        email = self.cleaned_data["email"].strip().lower()
        if get_user_model().objects.filter(username__iexact=email).exists():
            raise forms.ValidationError("An account with this email already exists; log in instead.")
        return str(email)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        p1, p2 = data.get("password1"), data.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            email = data.get("email") or ""
            # An unsaved user, so the similarity validator compares against the email.
            probe = get_user_model()(username=email, email=email)
            try:
                password_validation.validate_password(p1, probe)
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data


class ApiKeyIssueForm(forms.Form):
    name = forms.CharField(label="Name", max_length=120, required=False, validators=[validate_name],
                           help_text="What uses this key, e.g. “billing service”.")
    scopes = forms.MultipleChoiceField(
        label="Scopes", choices=Scope.choices, widget=forms.CheckboxSelectMultiple,
        initial=[Scope.INFER.value],
        help_text="infer: /v1 calls; analytics: read analytics; admin: governance API; all: every scope.")
    expires_in_days = forms.IntegerField(label="Expires after (days)", required=False, min_value=1,
                                         max_value=3650, help_text="Empty: never expires.")


class MemberAddForm(forms.Form):
    email = forms.EmailField(label="Email", max_length=150, validators=[validate_name])
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.MEMBER.value)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


def _money(label: str, help_text: str = "") -> forms.DecimalField:
    return forms.DecimalField(label=label, required=False, min_value=0, max_digits=20,
                              decimal_places=9, help_text=help_text or "USD; empty: no limit.")


class PolicyForm(forms.Form):
    """Budgets, models, rate limits and cache settings. Bounds are the governance API's own
    (``PolicyIO``), applied by ``clean``; the choices of models and providers are what the
    platform has enabled."""

    daily_budget_usd = _money("Daily budget")
    monthly_budget_usd = _money("Monthly budget")
    max_cost_per_request_usd = _money("Maximum cost per request")
    allowed_models = forms.MultipleChoiceField(
        label="Allowed models", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every model the platform offers.")
    allowed_providers = forms.MultipleChoiceField(
        label="Allowed providers", required=False, widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every provider the platform offers.")
    rpm_limit = forms.IntegerField(label="Requests per minute", required=False, min_value=1,
                                   help_text="Empty: no limit.")
    tpm_limit = forms.IntegerField(label="Tokens per minute", required=False, min_value=1,
                                   help_text="Empty: no limit.")
    cache_enabled = forms.BooleanField(label="Cache enabled", required=False)
    semantic_cache_enabled = forms.BooleanField(label="Semantic cache enabled", required=False)
    cache_ttl_seconds = forms.IntegerField(label="Cache lifetime (seconds)", min_value=1)
    cache_max_temperature = forms.FloatField(
        label="Highest temperature served from cache", min_value=0, max_value=2)
    semantic_threshold = forms.FloatField(
        label="Semantic similarity threshold", required=False, min_value=0, max_value=1,
        help_text="0 to 1; empty: the calibrated per-task thresholds.")

    def __init__(self, *args: Any, models: list[str], providers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["allowed_models"].choices = [(m, m) for m in models]  # type: ignore[attr-defined]
        self.fields["allowed_providers"].choices = [  # type: ignore[attr-defined]
            (p, p) for p in providers]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        check_against_api_bounds(self, data)
        return data


class AlertsForm(forms.Form):
    alert_emails = forms.CharField(
        label="Alert emails", required=False, widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One address per line (or comma separated). Budget and anomaly alerts go here.")
    alert_webhook_url = forms.URLField(label="Alert webhook URL", required=False, max_length=200)
    freeze_keys_on_anomaly = forms.BooleanField(label="Freeze a key when its spend is anomalous",
                                                required=False)

    def clean_alert_emails(self) -> list[str]:
        raw = self.cleaned_data.get("alert_emails") or ""
        emails = [e.strip() for e in raw.replace(",", "\n").splitlines() if e.strip()]
        field = forms.EmailField(validators=[validate_name])
        bad = []
        for email in emails:
            try:
                field.clean(email)
            except forms.ValidationError:
                bad.append(email)
        if bad:
            raise forms.ValidationError(f"Not an email address: {', '.join(bad)}")
        return emails

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not self.errors:
            check_against_api_bounds(self, data)
        return data


def check_against_api_bounds(form: forms.Form, data: dict[str, Any]) -> None:
    """Run the values through the governance API's policy serializer, so the console accepts
    exactly what the API accepts; its errors land on the field they name."""
    from governance.api import PolicyIO

    payload = {name: (str(v) if isinstance(v, Decimal) else v) for name, v in data.items()}
    io = PolicyIO(data=payload)
    if not io.is_valid():
        for name, errors in io.errors.items():
            form.add_error(name if name in form.fields else None, [str(e) for e in errors])
        return
    data.update(io.validated_data)
