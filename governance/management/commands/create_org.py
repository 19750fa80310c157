from django.core.management.base import BaseCommand, CommandError

from asahi_project.errors import AsahiError
from governance.services import organization_create


class Command(BaseCommand):
    help = "Create an organization (with its default policy)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("name")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        try:
            org = organization_create(name=options["name"], actor="cli")
        except AsahiError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"{org.id} {org.name}")
