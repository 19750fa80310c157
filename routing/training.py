"""Train the difficulty predictor shipped in routing/artifacts/ (reproducible, deterministic).

    python -m routing.training                         # train, write routing/artifacts/difficulty_v3.json
    python -m routing.training --check-generalization  # also leave each task family out in turn

Target: the per-prompt gain of calling the strong model, strong_correct - weak_correct in {-1, 0, 1},
centred within each MMLU subject, fitted by ridge regression on standardised general features plus
a TF-IDF lexical block; the ridge output is blended with standardised log-length (weight
`length_weight`) and standardised option similarity (weight `option_weight`, prompts with answer
options only) and then mapped to a probability of "strong needed" (weak wrong, strong right) by a
one-feature logistic calibration. The two blend weights were chosen by leaving each of the five
*seen* families out in turn (never looking at the unseen ones): docs/routing.md.

Split (routing.datasets): MMLU's subjects are grouped into eight task families; the families in
HELDOUT_FAMILIES are never trained on (every row of them is "unseen"); of the other families only
rows whose SHA-256 bucket is < 50 train. Needs scikit-learn (a dev dependency); serving needs only
routing.difficulty.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from routing.datasets import (
    DEFAULT_CONTAMINATED,
    DEFAULT_MMLU_DIR,
    EXCLUDED_SUBJECTS,
    HELDOUT_FAMILIES,
    STRONG_MMLU,
    TASK_FAMILIES,
    WEAK_MMLU,
    ResponseRecord,
    family_of,
    is_heldout,
    load_contaminated,
    load_responses,
    subject_of,
)
from routing.difficulty import (
    ARTIFACT_PATH,
    DifficultyModel,
    general_features,
    tfidf_vector,
    token_counts,
)
from routing.evaluation import baseline_scores, evaluate_scores

DEFAULT_ALPHA = 10.0
DEFAULT_LENGTH_WEIGHT = 0.3
DEFAULT_OPTION_WEIGHT = 0.6
DEFAULT_MIN_DF = 5
DEFAULT_MAX_VOCAB = 20000

ARTIFACT_NAME = "difficulty-v3"


def in_training_split(record: ResponseRecord) -> bool:
    """Rows the shipped predictor trains on: seen families, SHA-256 bucket < 50, labels sane."""
    family = family_of(record.source)
    return (
        family not in HELDOUT_FAMILIES
        and subject_of(record.source) not in EXCLUDED_SUBJECTS
        and not is_heldout(record.prompt)
    )


def artifact_version(records: Sequence[ResponseRecord], hyper: dict[str, object]) -> str:
    """Name + digest of the training prompts, labels and hyper-parameters (same data -> same id)."""
    digest = hashlib.sha256(json.dumps(hyper, sort_keys=True).encode())
    for r in records:
        digest.update(f"{r.source}\0{r.weak:d}{r.strong:d}\0{r.prompt}\0".encode())
    return f"{ARTIFACT_NAME}+{digest.hexdigest()[:8]}"


def _build_vocab(token_docs: Sequence[Counter[str]], *, min_df: int, max_vocab: int) -> dict:
    df: Counter[str] = Counter()
    for counts in token_docs:
        df.update(counts.keys())
    n = len(token_docs)
    kept = sorted((t for t, d in df.items() if d >= min_df), key=lambda t: (-df[t], t))
    # Smooth IDF as in scikit-learn: ln((1 + n) / (1 + df)) + 1.
    return {t: math.log((1 + n) / (1 + df[t])) + 1.0 for t in kept[:max_vocab]}


def train(
    *,
    records: Sequence[ResponseRecord],
    alpha: float = DEFAULT_ALPHA,
    length_weight: float = DEFAULT_LENGTH_WEIGHT,
    option_weight: float = DEFAULT_OPTION_WEIGHT,
    min_df: int = DEFAULT_MIN_DF,
    max_vocab: int = DEFAULT_MAX_VOCAB,
    center_by_subject: bool = True,
    metadata: dict[str, object] | None = None,
) -> DifficultyModel:
    """Fit the predictor on `records` (deterministic: closed-form ridge, sorted vocabulary)."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.linear_model import LogisticRegression, Ridge

    prompts = [r.prompt for r in records]
    gen = np.array([general_features(p) for p in prompts])
    mean = gen.mean(axis=0)
    scale = gen.std(axis=0)
    scale[scale == 0] = 1.0  # constant columns (e.g. every MMLU prompt has options)
    gen_z = (gen - mean) / scale

    docs = [token_counts(p) for p in prompts]
    idf = _build_vocab(docs, min_df=min_df, max_vocab=max_vocab)
    vocab_index = {t: i for i, t in enumerate(idf)}
    rows, cols, vals = [], [], []
    for i, counts in enumerate(docs):
        for t, v in tfidf_vector(counts, idf).items():
            rows.append(i)
            cols.append(vocab_index[t])
            vals.append(v)
    lex = csr_matrix((vals, (rows, cols)), shape=(len(prompts), len(idf)))
    design = hstack([csr_matrix(gen_z), lex]).tocsr()

    gain = np.array([float(r.strong) - float(r.weak) for r in records])
    # Centre the gain within each subject: the fit then learns what makes a prompt harder than
    # its neighbours, not which topics are hard (topic base rates do not carry to unseen families).
    by_subject: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_subject.setdefault(r.source, []).append(i)
    for idx in by_subject.values() if center_by_subject else ():
        gain[idx] -= gain[idx].mean()
    ridge = Ridge(alpha=alpha, solver="sparse_cg", tol=1e-6, random_state=0).fit(design, gain)
    fitted = ridge.predict(design)
    score_scale = float(fitted.std()) or 1.0

    length_mean, length_scale = float(mean[0]), float(scale[0])
    n_gen = gen.shape[1]
    lex_coef = {t: float(ridge.coef_[n_gen + j]) for t, j in vocab_index.items()}
    model = DifficultyModel(
        feature_mean=tuple(float(x) for x in mean),
        feature_scale=tuple(float(x) for x in scale),
        general_coef=tuple(float(x) for x in ridge.coef_[:n_gen]),
        intercept=float(ridge.intercept_),
        idf=idf,
        lexical_coef=lex_coef,
        score_scale=score_scale,
        length_mean=length_mean,
        length_scale=length_scale,
        length_weight=length_weight,
        option_weight=option_weight,
        calib_slope=1.0,
        calib_offset=0.0,
        metadata=dict(metadata or {}),
    )
    raw = np.array([model.raw_score(p) for p in prompts]).reshape(-1, 1)
    needed = np.array([(not r.weak) and r.strong for r in records])
    calib = LogisticRegression(C=1e4).fit(raw, needed)
    return DifficultyModel(
        **{
            **model.__dict__,
            "calib_slope": float(calib.coef_[0][0]),
            "calib_offset": float(calib.intercept_[0]),
            # The router's reference difficulty: how often the strong model was needed.
            "metadata": {**model.metadata, "base_rate": round(float(needed.mean()), 4)},
        }
    )


def _report(name: str, model: DifficultyModel, records: Sequence[ResponseRecord]) -> dict:
    prompts = [r.prompt for r in records]
    weak = [r.weak for r in records]
    strong = [r.strong for r in records]
    out = {}
    scored = {
        "router": [model.raw_score(p) for p in prompts],
        "length": baseline_scores(name="length", prompts=prompts, weak=weak, strong=strong),
    }
    for key, scores in scored.items():
        m = evaluate_scores(scores=scores, weak=weak, strong=strong)
        out[key] = {
            "apgr": round(m.apgr, 4),
            "cpt50": round(m.cpt50, 4),
            "cpt80": round(m.cpt80, 4),
        }
    r, ln = out["router"], out["length"]
    print(
        f"{name:<26} n={len(records):>5}  router APGR {r['apgr']:.3f} CPT50 {r['cpt50']:.1%} "
        f"CPT80 {r['cpt80']:.1%} | length APGR {ln['apgr']:.3f} CPT50 {ln['cpt50']:.1%}"
    )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=str(DEFAULT_MMLU_DIR), help="CSV or directory of CSVs")
    parser.add_argument("--contaminated", default=str(DEFAULT_CONTAMINATED))
    parser.add_argument("--strong", default=STRONG_MMLU)
    parser.add_argument("--weak", default=WEAK_MMLU)
    parser.add_argument("--out", default=str(ARTIFACT_PATH))
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA)
    parser.add_argument("--length-weight", type=float, default=DEFAULT_LENGTH_WEIGHT)
    parser.add_argument("--option-weight", type=float, default=DEFAULT_OPTION_WEIGHT)
    parser.add_argument("--min-df", type=int, default=DEFAULT_MIN_DF)
    parser.add_argument("--max-vocab", type=int, default=DEFAULT_MAX_VOCAB)
    parser.add_argument(
        "--no-subject-centering",
        dest="center_by_subject",
        action="store_false",
        help="fit the raw gain (learns topic base rates; kept for comparison)",
    )
    parser.add_argument(
        "--check-generalization",
        action="store_true",
        help="also train on seven task families and evaluate on the eighth, for each family",
    )
    args = parser.parse_args(argv)

    records = [
        r
        for r in load_responses(
            path=args.data,
            strong=args.strong,
            weak=args.weak,
            exclude=load_contaminated(args.contaminated),
        )
        if subject_of(r.source) not in EXCLUDED_SUBJECTS
    ]
    train_set = [r for r in records if in_training_split(r)]
    seen_heldout = [
        r for r in records if family_of(r.source) not in HELDOUT_FAMILIES and is_heldout(r.prompt)
    ]
    unseen = [r for r in records if family_of(r.source) in HELDOUT_FAMILIES]
    hyper: dict[str, object] = {
        "alpha": args.alpha,
        "length_weight": args.length_weight,
        "option_weight": args.option_weight,
        "min_df": args.min_df,
        "max_vocab": args.max_vocab,
        "center_by_subject": args.center_by_subject,
    }
    started = time.perf_counter()
    model = train(
        records=train_set,
        alpha=args.alpha,
        length_weight=args.length_weight,
        option_weight=args.option_weight,
        min_df=args.min_df,
        max_vocab=args.max_vocab,
        center_by_subject=args.center_by_subject,
        metadata={
            "version": artifact_version(train_set, hyper),
            "trained_on": (
                "RouteLLM MMLU responses (Apache-2.0), families "
                + ", ".join(f for f in TASK_FAMILIES if f not in HELDOUT_FAMILIES)
                + "; SHA-256 bucket < 50; decontaminated; without "
                + ", ".join(sorted(EXCLUDED_SUBJECTS))
            ),
            "heldout_families": list(HELDOUT_FAMILIES),
            "strong": args.strong,
            "weak": args.weak,
            "n_train": len(train_set),
            **hyper,
        },
    )
    print(f"{model.version}: trained on {len(train_set)} prompts in "
          f"{time.perf_counter() - started:.1f}s")
    metrics = {
        "train": _report("train", model, train_set),
        "seen_heldout_rows": _report("seen, held-out", model, seen_heldout),
        "unseen_families": _report("unseen families", model, unseen),
    }
    for family in HELDOUT_FAMILIES:
        rows = [r for r in records if family_of(r.source) == family]
        metrics[f"unseen_{family}"] = _report(f"unseen {family}", model, rows)

    if args.check_generalization:
        # Every family in turn is unseen: train on all rows of the other seven, test on it.
        for family in TASK_FAMILIES:
            tr = [r for r in records if family_of(r.source) != family]
            te = [r for r in records if family_of(r.source) == family]
            if te and tr:
                metrics[f"leave_out_{family}"] = _report(
                    f"leave-out {family}",
                    train(records=tr, alpha=args.alpha, length_weight=args.length_weight,
                          option_weight=args.option_weight,
                          min_df=args.min_df, max_vocab=args.max_vocab,
                          center_by_subject=args.center_by_subject),
                    te,
                )

    data = model.to_json()
    data["metadata"] = {**model.metadata, "metrics": metrics}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
