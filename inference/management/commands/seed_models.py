from django.core.management.base import BaseCommand

from inference.catalogue import seed_catalogue


class Command(BaseCommand):
    help = "Seed the model catalogue (OpenAI, Anthropic, Cohere models and list prices)."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--update-prices", action="store_true",
                            help="Reset existing models' prices and quality to the shipped list.")

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        result = seed_catalogue(update_prices=options["update_prices"])
        self.stdout.write(f"models: {result['created']} created, {result['updated']} updated, "
                          f"{result['total']} in catalogue")
