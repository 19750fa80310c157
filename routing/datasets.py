"""Loading RouteLLM-style per-prompt response records and the deterministic train/held-out split.

A response file is a CSV with a `prompt` column and one True/False column per model (whether that
model answered the prompt correctly). The data itself is never copied into the project: commands
read it from a path whose default is `../shared/eval/routing` relative to the project root.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_EVAL_DIR = PROJECT_ROOT.parent / "shared" / "eval" / "routing"
DEFAULT_MMLU_DIR = DEFAULT_EVAL_DIR / "mmlu"
DEFAULT_CONTAMINATED = DEFAULT_EVAL_DIR / "mmlu_contaminated_prompts.jsonl"
STRONG_MMLU = "gpt-4-1106-preview"
WEAK_MMLU = "mistralai/Mixtral-8x7B-Instruct-v0.1"

# Prompts whose hash bucket is >= this are held out from training (about half).
HELDOUT_FROM_BUCKET = 50

_TRUE = {"true", "1", "yes", "t"}

# MMLU's 57 subjects grouped into task families (what a user would call a kind of task), for
# training on some families and measuring on families the router has never seen.
TASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "math": ("abstract_algebra", "college_mathematics", "elementary_mathematics",
             "high_school_mathematics", "high_school_statistics"),
    "physical_science": ("astronomy", "college_chemistry", "college_physics",
                         "conceptual_physics", "high_school_chemistry", "high_school_physics",
                         "electrical_engineering"),
    "computing": ("college_computer_science", "computer_security",
                  "high_school_computer_science", "machine_learning"),
    "life_health": ("anatomy", "clinical_knowledge", "college_biology", "college_medicine",
                    "high_school_biology", "human_aging", "medical_genetics", "nutrition",
                    "professional_medicine", "virology", "human_sexuality"),
    "law": ("international_law", "jurisprudence", "professional_law"),
    "history_culture": ("high_school_european_history", "high_school_us_history",
                        "high_school_world_history", "prehistory", "world_religions",
                        "high_school_geography", "global_facts"),
    "logic_ethics": ("formal_logic", "logical_fallacies", "moral_disputes", "moral_scenarios",
                     "philosophy", "business_ethics"),
    "social_business": ("econometrics", "high_school_government_and_politics",
                        "high_school_macroeconomics", "high_school_microeconomics",
                        "high_school_psychology", "professional_psychology", "public_relations",
                        "security_studies", "sociology", "us_foreign_policy", "management",
                        "marketing", "professional_accounting", "miscellaneous"),
}
_FAMILY_OF = {subject: family for family, subjects in TASK_FAMILIES.items() for subject in subjects}
# Families the shipped predictor never trains on (chosen before the final run; reported by
# eval_router as "unseen").
HELDOUT_FAMILIES: tuple[str, ...] = ("math", "law", "computing")
# GPT-4 is marked right on 3% of high_school_mathematics (Mixtral 32%): a scoring artefact of the
# records, not model skill, so that subject is left out of training and evaluation.
EXCLUDED_SUBJECTS = frozenset({"high_school_mathematics"})


def subject_of(source: str) -> str:
    return source.removeprefix("mmlu_")


def family_of(source: str) -> str | None:
    """The task family of a record's source file (None for files outside MMLU)."""
    return _FAMILY_OF.get(subject_of(source))


@dataclass(frozen=True)
class ResponseRecord:
    """Whether the weak and the strong model answered one prompt correctly."""

    prompt: str
    weak: bool
    strong: bool
    source: str  # file stem, e.g. "mmlu_anatomy"


def split_bucket(prompt: str) -> int:
    """Stable bucket 0-99 from the prompt text (SHA-256), independent of file order."""
    return int(hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:8], 16) % 100


def is_heldout(prompt: str) -> bool:
    return split_bucket(prompt) >= HELDOUT_FROM_BUCKET


def load_contaminated(path: Path | str = DEFAULT_CONTAMINATED) -> frozenset[str]:
    """Prompts RouteLLM drops from evaluation (their `eval_prompt` field); empty if absent."""
    p = Path(path)
    if not p.exists():
        return frozenset()
    out = set()
    with open(p, encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.add(json.loads(line)["eval_prompt"])
    return frozenset(out)


def _csv_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(path.glob("*.csv"))
    return [path]


def load_responses(
    *,
    path: Path | str,
    strong: str,
    weak: str,
    exclude: frozenset[str] = frozenset(),
) -> list[ResponseRecord]:
    """Read a CSV or a directory of CSVs; rows whose prompt is in `exclude` are skipped."""
    csv.field_size_limit(sys.maxsize)
    records: list[ResponseRecord] = []
    for file in _csv_files(Path(path)):
        with open(file, encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            for col in ("prompt", strong, weak):
                if col not in fields:
                    raise ValueError(f"{file}: column {col!r} not found (have {fields})")
            for row in reader:
                prompt = row["prompt"]
                if prompt in exclude:
                    continue
                records.append(
                    ResponseRecord(
                        prompt=prompt,
                        weak=row[weak].strip().lower() in _TRUE,
                        strong=row[strong].strip().lower() in _TRUE,
                        source=file.stem,
                    )
                )
    return records
