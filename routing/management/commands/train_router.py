"""`manage.py train_router`: retrain the difficulty predictor (thin wrapper over routing.training)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from routing.training import main


class Command(BaseCommand):
    help = "Train the routing difficulty predictor; extra arguments go to `python -m routing.training`."

    def add_arguments(self, parser):
        parser.add_argument("training_args", nargs="*", help="e.g. --check-generalization")

    def handle(self, *args, **options):
        code = main(options["training_args"])
        if code:
            raise CommandError(f"training failed with exit code {code}")
