from django.urls import path

from governance import api

urlpatterns = [
    path("signup", api.SignupView.as_view(), name="signup"),
    path("governance/api-keys", api.ApiKeysView.as_view(), name="governance-api-keys"),
    path("governance/api-keys/<str:prefix>", api.ApiKeyRevokeView.as_view(),
         name="governance-api-key"),
    path("governance/policies/<str:org_id>", api.PolicyView.as_view(), name="governance-policy"),
    path("governance/usage", api.UsageView.as_view(), name="governance-usage"),
    path("governance/audit", api.AuditView.as_view(), name="governance-audit"),
    path("governance/compliance/report", api.ComplianceReportView.as_view(),
         name="governance-compliance"),
]
