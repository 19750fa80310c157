"""Console pages that are not about one dashboard area: landing, signup, login, API docs."""

from __future__ import annotations

from typing import Any

from django.contrib import auth
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from asahi_project.client_ip import client_ip
from asahi_project.errors import InvalidRequest
from console.access import membership_for, role_required
from console.benchmarks import landing_figures
from console.forms import SignupForm
from governance import services
from governance.api import ClientIpThrottle
from governance.login_throttle import ThrottledAuthenticationForm


def landing(request: HttpRequest) -> HttpResponse:
    return render(request, "console/landing.html", {"figures": landing_figures()})


def signup(request: HttpRequest) -> HttpResponse:
    """Creates the organization, its owner and the first key through the same service as the JSON
    ``POST /signup``; the key is shown once on the next page and never again."""
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        wait = _signup_throttle_wait(request)
        if wait is not None:
            form.add_error(None, f"Too many signups from your address; try again in "
                                 f"{max(1, round(wait / 60))} minutes.")
            return render(request, "console/signup.html", {"form": form}, status=429)
        email = form.cleaned_data["email"]
        try:
            result = services.signup(org_name=form.cleaned_data["org_name"], user_id=email,
                                     email=email, ip=client_ip(request),
                                     password=form.cleaned_data["password1"])
        except InvalidRequest as exc:
            field = exc.param if exc.param in form.fields else None
            form.add_error("org_name" if exc.param == "org_name" else field, exc.message)
        else:
            user = auth.authenticate(request, username=email,
                                     password=form.cleaned_data["password1"])
            auth.login(request, user)
            return render(request, "console/signup_done.html",
                          {"organization": result.organization, "raw_key": result.issued.raw,
                           "key": result.issued.key})
    status = 400 if form.errors else 200
    return render(request, "console/signup.html", {"form": form}, status=status)


class _SignupScope:
    throttle_scope = "signup"


def _signup_throttle_wait(request: HttpRequest) -> float | None:
    """The JSON signup's throttle (same scope, rate and per-address counter), so the page is not a
    way around it. None when allowed; else the seconds to wait."""
    throttle = ClientIpThrottle()
    if throttle.allow_request(request, _SignupScope()):  # type: ignore[arg-type]
        return None
    return throttle.wait() or 60.0


class LoginView(auth_views.LoginView):
    template_name = "console/auth/login.html"
    authentication_form = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def get_default_redirect_url(self) -> str:
        # Platform staff outside any organization work in the admin, not the console.
        user = self.request.user
        if user.is_staff and membership_for(user) is None:
            return "/admin/"
        return "/dashboard/"

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        codes = {e.code for e in form.non_field_errors().as_data()}
        if "throttled" in codes:
            response.status_code = 429
        elif "throttle_unavailable" in codes:
            response.status_code = 503
        return response


@role_required("viewer")
def api_docs(request: HttpRequest) -> HttpResponse:
    base_url = request.build_absolute_uri("/v1").rstrip("/")
    return render(request, "console/api_docs.html", {"base_url": base_url})
