"""Console forms: they validate what a person typed and name the wrong field; the writes themselves
are governance services (a form never saves a model)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model, password_validation

from asahi_project.textrules import validate_name


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
