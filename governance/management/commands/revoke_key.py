from django.core.management.base import BaseCommand, CommandError

from asahi_project.errors import AsahiError
from governance.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key by its public prefix (ask_xxxxxxxxxx)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("prefix")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        try:
            key = api_key_revoke(prefix=options["prefix"], actor="cli")
        except AsahiError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"revoked {key.prefix} at {key.revoked_at}")
