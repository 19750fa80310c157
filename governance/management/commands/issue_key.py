from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from asahi_project.errors import AsahiError
from governance.models import Organization
from governance.services import api_key_issue, organization_create


class Command(BaseCommand):
    help = "Issue an API key. The raw key is printed once, as the last line; only its hash is stored."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--org", required=True, help="Organization name")
        parser.add_argument("--create-org", action="store_true", help="Create it if missing")
        parser.add_argument("--scopes", default="all", help="Comma list: infer,analytics,admin,all")
        parser.add_argument("--expires-days", type=int, default=None)
        parser.add_argument("--name", default="issued by CLI")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        try:
            with transaction.atomic():
                org = Organization.objects.filter(name=options["org"]).first()
                if org is None:
                    if not options["create_org"]:
                        raise CommandError(
                            f"organization {options['org']!r} not found (use --create-org)")
                    org = organization_create(name=options["org"], actor="cli")
                issued = api_key_issue(organization=org, actor="cli", name=options["name"],
                                       scopes=options["scopes"],
                                       expires_in_days=options["expires_days"])
        except AsahiError as exc:
            raise CommandError(exc.message) from exc
        key = issued.key
        self.stdout.write(f"organization: {org.name} ({org.id})")
        self.stdout.write(f"prefix: {key.prefix}  scopes: {','.join(key.scopes)}  expires: "
                          f"{key.expires_at.isoformat() if key.expires_at else 'never'}")
        self.stdout.write("key (shown once):")
        self.stdout.write(issued.raw)
