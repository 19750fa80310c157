"""drf-spectacular: how Asahi's authentication classes appear in the OpenAPI schema."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthScheme(OpenApiAuthenticationExtension):
    target_class = "governance.auth.ApiKeyAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "http", "scheme": "bearer",
                "description": "An Asahi API key: `Authorization: Bearer ask_...`"}


class StaffSessionScheme(OpenApiAuthenticationExtension):
    target_class = "governance.auth.StaffSessionAuthentication"
    name = "staffSession"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {"type": "apiKey", "in": "cookie", "name": "sessionid",
                "description": "A staff user's admin session (platform staff)"}
