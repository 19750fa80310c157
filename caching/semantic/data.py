"""Labelled paraphrase pairs (QQP CSV, MRPC TSV) and the deterministic tune/held-out split.

The split is a pure function of the pair's text, so training and evaluation always agree on it
without storing any index files, and the order of the two questions does not matter.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Split = Literal["tune", "heldout", "all"]
PairFormat = Literal["qqp", "mrpc"]

# Share of pairs (in percent) that go to the tune part; the rest is held out.
TUNE_PERCENT = 50

# Relative to the project root; the evaluation data is never copied into the repository.
DEFAULT_QQP_PATH = Path(__file__).resolve().parents[2] / ".." / "shared/eval/paraphrase/qqp_val.csv"
# MRPC's training split (3,675 news-sentence pairs); split into tune/held-out like QQP.
DEFAULT_MRPC_PATH = (
    Path(__file__).resolve().parents[2] / ".." / "shared/eval/paraphrase/mrpc_train.tsv"
)


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """Two texts and whether they mean the same thing."""

    text_a: str
    text_b: str
    duplicate: bool


def split_of(*, text_a: str, text_b: str) -> Literal["tune", "heldout"]:
    """Assign a pair to "tune" or "heldout" by a hash of its (order-independent) texts.

    The same function splits QQP and MRPC (the hash depends only on the texts), so training
    reads the tune part of both and ``eval_semantic_cache`` scores the held-out part of both.
    """
    first, second = sorted((text_a.strip(), text_b.strip()))
    digest = hashlib.sha256(f"{first}\x1f{second}".encode()).digest()
    bucket = int.from_bytes(digest[:4], "big") % 100
    return "tune" if bucket < TUNE_PERCENT else "heldout"


def select_split(pairs: Iterable[LabelledPair], *, split: Split) -> list[LabelledPair]:
    """Keep the pairs belonging to ``split`` ("all" keeps everything)."""
    if split == "all":
        return list(pairs)
    return [p for p in pairs if split_of(text_a=p.text_a, text_b=p.text_b) == split]


def _truthy(value: str) -> bool:
    return value.strip() in {"1", "1.0", "true", "True", "yes"}


def read_qqp(path: Path | str) -> list[LabelledPair]:
    """Read a QQP-style CSV with columns ``question1,question2,is_duplicate``."""
    with open(path, newline="", encoding="utf-8") as handle:
        return list(_qqp_rows(csv.DictReader(handle)))


def _qqp_rows(reader: csv.DictReader) -> Iterator[LabelledPair]:
    for row in reader:
        a, b, label = row.get("question1"), row.get("question2"), row.get("is_duplicate")
        if not a or not b or label is None:
            continue  # QQP has a handful of rows with an empty question
        yield LabelledPair(text_a=a, text_b=b, duplicate=_truthy(label))


def read_mrpc(path: Path | str) -> list[LabelledPair]:
    """Read an MRPC TSV (header ``Quality  #1 ID  #2 ID  #1 String  #2 String``).

    MRPC's sentences contain unbalanced quote characters, so quoting is disabled.
    """
    pairs: list[LabelledPair] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            return pairs
        columns = {name.strip(): i for i, name in enumerate(header)}
        q, s1, s2 = columns["Quality"], columns["#1 String"], columns["#2 String"]
        for row in reader:
            if len(row) <= max(q, s1, s2):
                continue
            pairs.append(LabelledPair(text_a=row[s1], text_b=row[s2], duplicate=_truthy(row[q])))
    return pairs


def read_pairs(path: Path | str, *, fmt: PairFormat = "qqp") -> list[LabelledPair]:
    """Read labelled pairs in the given format."""
    return read_qqp(path) if fmt == "qqp" else read_mrpc(path)
