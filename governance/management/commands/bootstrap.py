"""First-start setup for `./asahi up`: an operator login, a default organization and its first key.

Secrets are printed only when they are created; later runs say how to make new ones.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from governance.models import ApiKey, Organization
from governance.services import api_key_issue, organization_create


class Command(BaseCommand):
    help = "Create the operator account, the default organization and its first API key if missing."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--url", default="http://127.0.0.1:8000")
        parser.add_argument("--username", default="admin")
        parser.add_argument("--org", default="default")

    @transaction.atomic
    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        url = options["url"].rstrip("/")
        User = get_user_model()
        username = options["username"]
        self.stdout.write(f"Asahi is running at {url}")
        self.stdout.write(f"  API docs: {url}/docs   health: {url}/health   dashboard: "
                          f"{url}/dashboard/")
        if not User.objects.filter(username=username).exists():
            password = secrets.token_urlsafe(12)
            User.objects.create_superuser(username=username, email="", password=password)
            self.stdout.write(f"  operator console: {url}/admin/  login: {username}  "
                              f"password: {password}  (shown once)")
        else:
            self.stdout.write(f"  operator console: {url}/admin/  login: {username}  (password "
                              f"set on first start; change it with ./asahi manage changepassword "
                              f"{username})")
        org = Organization.objects.filter(name=options["org"]).first()
        if org is None:
            org = organization_create(name=options["org"], actor="bootstrap")
        if not ApiKey.objects.filter(organization=org, name="bootstrap").exists():
            issued = api_key_issue(organization=org, actor="bootstrap", name="bootstrap",
                                   scopes=["all"])
            self.stdout.write(f"  API key for organization '{org.name}' (shown once): {issued.raw}")
        else:
            self.stdout.write(f"  API key: issued on first start; issue another with "
                              f"./asahi manage issue_key --org {org.name}")
        self.stdout.write(f"  Try: curl {url}/v1/chat/completions -H 'Authorization: Bearer <key>' "
                          "-H 'Content-Type: application/json' "
                          "-d '{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                          "\"content\":\"Hello\"}]}'")
