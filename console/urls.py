"""Console pages (HTML, session login). The JSON API keeps its own paths (e.g. POST /signup)."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from console import analytics_views, cache_views, dashboard, playground, settings_views, views

app_name = "console"

urlpatterns = [
    path("", views.landing, name="landing"),
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(
        template_name="console/auth/password_change.html",
        success_url=reverse_lazy("console:password_change_done")), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name="console/auth/password_change_done.html"), name="password_change_done"),
    path("password/reset/", auth_views.PasswordResetView.as_view(
        template_name="console/auth/password_reset.html",
        email_template_name="console/auth/password_reset_email.txt",
        subject_template_name="console/auth/password_reset_subject.txt",
        success_url=reverse_lazy("console:password_reset_done")), name="password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(
        template_name="console/auth/password_reset_done.html"), name="password_reset_done"),
    path("password/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(
        template_name="console/auth/password_reset_confirm.html",
        success_url=reverse_lazy("console:password_reset_complete")),
         name="password_reset_confirm"),
    path("password/reset/complete/", auth_views.PasswordResetCompleteView.as_view(
        template_name="console/auth/password_reset_complete.html"),
         name="password_reset_complete"),
    path("api-docs/", views.api_docs, name="api_docs"),
    # Dashboard, playground, cache and analytics pages.
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("dashboard/live/", dashboard.dashboard_live, name="dashboard_live"),
    path("playground/", playground.playground, name="playground"),
    path("playground/run", playground.playground_run, name="playground_run"),
    path("cache/", cache_views.cache_page, name="cache"),
    path("cache/invalidate/", cache_views.cache_invalidate, name="cache_invalidate"),
    path("analytics/", analytics_views.analytics_page, name="analytics"),
    path("analytics/ledger.csv", analytics_views.ledger_csv, name="ledger_csv"),
    path("settings/", settings_views.settings_page, name="settings"),
    path("settings/keys/", settings_views.key_issue, name="key_issue"),
    path("settings/keys/<str:prefix>/revoke/", settings_views.key_revoke, name="key_revoke"),
    path("settings/keys/<str:prefix>/rotate/", settings_views.key_rotate, name="key_rotate"),
    path("settings/members/", settings_views.member_add, name="member_add"),
    path("settings/members/<int:membership_id>/role/", settings_views.member_role,
         name="member_role"),
    path("settings/members/<int:membership_id>/remove/", settings_views.member_remove,
         name="member_remove"),
    path("settings/policy/", settings_views.policy_edit, name="policy_edit"),
    path("settings/alerts/", settings_views.alerts_edit, name="alerts_edit"),
]
