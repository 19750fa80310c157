"""`manage.py eval_router`: APGR / CPT of the shipped autopilot router vs random, length, oracle."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from routing.datasets import DEFAULT_CONTAMINATED, DEFAULT_MMLU_DIR, STRONG_MMLU, WEAK_MMLU
from routing.evaluation import add_eval_arguments, evaluate_responses


class Command(BaseCommand):
    help = "Evaluate the autopilot router on a RouteLLM-style responses CSV or directory."

    def add_arguments(self, parser):
        add_eval_arguments(
            parser,
            default_responses=str(DEFAULT_MMLU_DIR),
            default_strong=STRONG_MMLU,
            default_weak=WEAK_MMLU,
            default_contaminated=str(DEFAULT_CONTAMINATED),
        )

    def handle(self, *args, **options):
        try:
            report = evaluate_responses(
                path=options["responses"],
                strong=options["strong"],
                weak=options["weak"],
                split=options["split"],
                contaminated=options["contaminated"] or None,
                points=options["points"],
            )
        except (OSError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(report.format())
