"""Regression pins for the shipped difficulty artifact's held-out numbers (issue 15).

Reads RouteLLM's MMLU records from ../shared/eval/routing (never copied into the project: licence
terms); skipped with the reason when that directory is absent (e.g. a clone without shared/).
The pins are what `python manage.py eval_router` printed for the artifact in this commit; a
retrained artifact must update them (and docs/routing.md) in the same change.
"""

from __future__ import annotations

import pytest

from routing.datasets import DEFAULT_CONTAMINATED, DEFAULT_MMLU_DIR, STRONG_MMLU, WEAK_MMLU
from routing.difficulty import default_model

pytestmark = pytest.mark.skipif(
    not DEFAULT_MMLU_DIR.is_dir(),
    reason=f"RouteLLM MMLU records not found at {DEFAULT_MMLU_DIR} (evaluation data is read from "
    "../shared/eval at run time, never shipped)",
)

TOLERANCE = 0.005  # deterministic scoring; leaves room for float noise across BLAS builds only
# family -> (router APGR, length APGR, router CPT50); unseen families use every row, seen ones
# their held-out (SHA-256 bucket >= 50) rows.
PINNED = {
    "math": (0.644, 0.516, 0.275),
    "computing": (0.541, 0.489, 0.389),
    "law": (0.578, 0.547, 0.414),
    "physical_science": (0.624, 0.398, 0.367),
    "life_health": (0.611, 0.554, 0.356),
    "history_culture": (0.566, 0.540, 0.391),
    "logic_ethics": (0.641, 0.628, 0.329),
    "social_business": (0.620, 0.527, 0.356),
}
PINNED_UNSEEN = (0.602, 0.556, 0.355)  # pooled math + computing + law
PINNED_ALL_HELDOUT = (0.630, 0.564, 0.317)


@pytest.fixture(scope="module")
def report():  # type: ignore[no-untyped-def]
    from routing.evaluation import evaluate_responses

    return evaluate_responses(path=str(DEFAULT_MMLU_DIR), strong=STRONG_MMLU, weak=WEAK_MMLU,
                              split="heldout", contaminated=str(DEFAULT_CONTAMINATED))


def test_report_names_the_artifact_and_its_unseen_families(report) -> None:
    model = default_model()
    assert report.version == model.version and report.version.startswith("difficulty-v3+")
    assert {f.family for f in report.families if not f.seen} == {"math", "computing", "law"}
    assert set(model.metadata["heldout_families"]) == {"math", "computing", "law"}
    law = next(f for f in report.families if f.family == "law")
    assert law.subjects == ("international_law", "jurisprudence", "professional_law")


def test_per_family_heldout_numbers_are_pinned(report) -> None:
    got = {f.family: (f.router.apgr, f.length.apgr, f.router.cpt50) for f in report.families}
    assert set(got) == set(PINNED)
    for family, pinned in PINNED.items():
        assert got[family] == pytest.approx(pinned, abs=TOLERANCE), family


def test_pooled_unseen_and_overall_numbers_are_pinned(report) -> None:
    unseen = dict(report.unseen)
    assert (unseen["router"].apgr, unseen["length"].apgr, unseen["router"].cpt50) == pytest.approx(
        PINNED_UNSEEN, abs=TOLERANCE)
    rows = dict(report.rows)
    assert (rows["asahi-autopilot"].apgr, rows["length"].apgr,
            rows["asahi-autopilot"].cpt50) == pytest.approx(PINNED_ALL_HELDOUT, abs=TOLERANCE)


def test_router_beats_length_on_every_family(report) -> None:
    # What the artifact is for: better than prompt length where it has never been trained, and
    # never below it on the held-out rows of the families it has (issue 15).
    for f in report.families:
        assert f.router.apgr > f.length.apgr, f.family


def test_leave_one_family_out_beats_length_on_every_family() -> None:
    metrics = default_model().metadata["metrics"]
    for family in ("math", "physical_science", "computing", "life_health", "law",
                   "history_culture", "logic_ethics", "social_business"):
        row = metrics[f"leave_out_{family}"]
        assert row["router"]["apgr"] > row["length"]["apgr"], family


def test_training_command_reproduces_the_shipped_artifact(tmp_path) -> None:
    pytest.importorskip("sklearn", reason="training needs scikit-learn (dev dependency)")
    from routing.difficulty import load_model
    from routing.training import main

    out = tmp_path / "difficulty.json"
    assert main(["--out", str(out)]) == 0
    again, shipped = load_model(out), default_model()
    assert again.version == shipped.version
    for prompt in ("What is 2+2?", "Summarize this memo in one line.",
                   "A train leaves at 3 pm at 80 km/h; another at 4 pm at 100 km/h. When does "
                   "the second catch up?\nA. 7 pm\nB. 8 pm\nC. 9 pm\nD. never"):
        assert again.predict(prompt) == pytest.approx(shipped.predict(prompt), abs=1e-4)
