"""Train the difficulty predictor shipped in routing/artifacts/ (reproducible, deterministic).

    python -m routing.training                       # train on the MMLU train half, write artifact
    python -m routing.training --check-generalization  # also run leave-subject-group-out

Target: the per-prompt gain of calling the strong model, strong_correct - weak_correct in {-1, 0, 1},
fitted by ridge regression on standardised general features plus a TF-IDF lexical block; the ridge
output is blended with standardised log-length (weight `length_weight`) and then mapped to a
probability of "strong needed" (weak wrong, strong right) by a one-feature logistic calibration.
Training uses only prompts whose SHA-256 bucket is < 50 (see routing.datasets); the rest is held out.
Needs scikit-learn (a dev dependency); serving needs only routing.difficulty.
"""

from __future__ import annotations

import argparse
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
    STRONG_MMLU,
    WEAK_MMLU,
    ResponseRecord,
    is_heldout,
    load_contaminated,
    load_responses,
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
DEFAULT_MIN_DF = 5
DEFAULT_MAX_VOCAB = 20000

# MMLU's own four categories, used only for the leave-subject-group-out generalization check.
SUBJECT_GROUPS: dict[str, list[str]] = {
    "stem": [
        "abstract_algebra",
        "anatomy",
        "astronomy",
        "college_biology",
        "college_chemistry",
        "college_computer_science",
        "college_mathematics",
        "college_physics",
        "computer_security",
        "conceptual_physics",
        "electrical_engineering",
        "elementary_mathematics",
        "high_school_biology",
        "high_school_chemistry",
        "high_school_computer_science",
        "high_school_mathematics",
        "high_school_physics",
        "high_school_statistics",
        "machine_learning",
    ],
    "humanities": [
        "formal_logic",
        "high_school_european_history",
        "high_school_us_history",
        "high_school_world_history",
        "international_law",
        "jurisprudence",
        "logical_fallacies",
        "moral_disputes",
        "moral_scenarios",
        "philosophy",
        "prehistory",
        "professional_law",
        "world_religions",
    ],
    "social_sciences": [
        "econometrics",
        "high_school_geography",
        "high_school_government_and_politics",
        "high_school_macroeconomics",
        "high_school_microeconomics",
        "high_school_psychology",
        "human_sexuality",
        "professional_psychology",
        "public_relations",
        "security_studies",
        "sociology",
        "us_foreign_policy",
    ],
}


def subject_group(source: str) -> str:
    subject = source.removeprefix("mmlu_")
    for group, subjects in SUBJECT_GROUPS.items():
        if subject in subjects:
            return group
    return "other"


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
    min_df: int = DEFAULT_MIN_DF,
    max_vocab: int = DEFAULT_MAX_VOCAB,
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
        f"{name:<16} n={len(records):>5}  router APGR {r['apgr']:.3f} CPT50 {r['cpt50']:.1%} "
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
    parser.add_argument("--min-df", type=int, default=DEFAULT_MIN_DF)
    parser.add_argument("--max-vocab", type=int, default=DEFAULT_MAX_VOCAB)
    parser.add_argument(
        "--check-generalization",
        action="store_true",
        help="also train on three MMLU subject groups and evaluate on the fourth",
    )
    args = parser.parse_args(argv)

    records = load_responses(
        path=args.data,
        strong=args.strong,
        weak=args.weak,
        exclude=load_contaminated(args.contaminated),
    )
    train_set = [r for r in records if not is_heldout(r.prompt)]
    held = [r for r in records if is_heldout(r.prompt)]
    hyper = {
        "alpha": args.alpha,
        "length_weight": args.length_weight,
        "min_df": args.min_df,
        "max_vocab": args.max_vocab,
    }
    started = time.perf_counter()
    model = train(
        records=train_set,
        **hyper,
        metadata={
            "trained_on": "RouteLLM MMLU responses, SHA-256 bucket < 50, decontaminated",
            "strong": args.strong,
            "weak": args.weak,
            "n_train": len(train_set),
            **hyper,
        },
    )
    print(f"trained on {len(train_set)} prompts in {time.perf_counter() - started:.1f}s")
    metrics = {
        "train": _report("train", model, train_set),
        "heldout": _report("heldout", model, held),
    }

    if args.check_generalization:
        for group in (*SUBJECT_GROUPS, "other"):
            tr = [r for r in records if subject_group(r.source) != group]
            te = [r for r in records if subject_group(r.source) == group]
            if te:
                metrics[f"leave_out_{group}"] = _report(
                    f"leave-out {group}", train(records=tr, **hyper), te
                )

    import json

    data = model.to_json()
    data["metadata"] = {**model.metadata, "metrics": metrics}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, separators=(",", ":"), sort_keys=True), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
