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
