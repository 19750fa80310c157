"""Train the semantic cache's artefacts from labelled paraphrase pairs (reproducible, CPU only).

Three artefacts end up in ``caching/artifacts/``:

* ``semantic_adapter.npz`` - a rank-16 low-rank adapter (LoRA) for every linear layer of
  all-MiniLM-L6-v2, fp16, ~1 MB. It is merged into the packaged base weights at load time, so
  the tuned embedder is as fast as the base one. Trained with the CoSENT loss, which only asks
  that duplicates score a higher cosine than non-duplicates: it sharpens the embedder exactly on
  the "same topic, different question" pairs that a cache must not confuse.
* ``semantic_verifier.npz`` - a small gradient-boosted tree ensemble over the fine-tuned cosine
  and the lexical features of :mod:`caching.semantic.features` (monotone in the cosine).
* ``semantic_decision.json`` - thresholds chosen on data neither model was trained on.

Only the tune part of the pairs is used (see :func:`caching.semantic.data.split_of`). It is cut in
two again by a second hash: part A trains the adapter, part B (unseen by the adapter, so its
cosines look like production ones) trains the verifier and sets the thresholds.

Run: ``python -m caching.semantic.training --pairs ../shared/eval/paraphrase/qqp_val.csv``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from caching.semantic.data import (
    DEFAULT_QQP_PATH,
    LabelledPair,
    PairFormat,
    read_pairs,
    select_split,
)
from caching.semantic.embedders import (
    ADAPTER_PATH,
    ARTIFACTS_DIR,
    LocalMiniLMEmbedder,
    base_model_dir,
)
from caching.semantic.features import FEATURE_NAMES, features, guard_violation
from caching.semantic.verifier import VERIFIER_PATH, TreeEnsemble

# Percent of the tune part that trains the adapter (part A); the rest calibrates (part B).
ADAPTER_SHARE = 70
DECISION_CONFIG_PATH = ARTIFACTS_DIR / "semantic_decision.json"
ADAPTED_LAYERS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; the defaults produce the shipped artefacts."""

    seed: int = 0
    epochs: int = 3
    rank: int = 16
    alpha: float = 32.0
    learning_rate: float = 5e-4
    batch_size: int = 32
    max_tokens: int = 64
    cosent_scale: float = 20.0
    target_precision: float = 0.96  # what the thresholds aim for on part B (margin over 0.95)


def part_of(pair: LabelledPair) -> str:
    """Second, independent hash split of the tune part: "A" (adapter) or "B" (verifier)."""
    first, second = sorted((pair.text_a.strip(), pair.text_b.strip()))
    digest = hashlib.blake2b(f"{second}\x1e{first}".encode(), digest_size=8).digest()
    return "A" if int.from_bytes(digest, "big") % 100 < ADAPTER_SHARE else "B"


# --------------------------------------------------------------------------- adapter (LoRA)


def train_adapter(pairs: list[LabelledPair], *, config: TrainConfig) -> dict[str, np.ndarray]:
    """Fine-tune low-rank adapters on ``pairs`` with the CoSENT loss; returns their factors."""
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    model_dir = base_model_dir()
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=config.max_tokens)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    model = BertModel.from_pretrained(str(model_dir), local_files_only=True)
    for param in model.parameters():
        param.requires_grad_(False)

    factors: dict[str, tuple[torch.nn.Parameter, torch.nn.Parameter]] = {}
    scale = config.alpha / config.rank

    class LoRALinear(torch.nn.Module):
        def __init__(self, base: torch.nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.a = torch.nn.Parameter(torch.randn(config.rank, base.in_features) * 0.01)
            self.b = torch.nn.Parameter(torch.zeros(base.out_features, config.rank))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + (x @ self.a.T @ self.b.T) * scale

    for name, module in list(model.named_modules()):
        if any(name.endswith(suffix) for suffix in ADAPTED_LAYERS) and isinstance(
            module, torch.nn.Linear
        ):
            parent_name, _, child = name.rpartition(".")
            wrapped = LoRALinear(module)
            setattr(model.get_submodule(parent_name), child, wrapped)
            factors[f"{name}.weight"] = (wrapped.a, wrapped.b)

    params = [p for pair in factors.values() for p in pair]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=0.0)
    steps = config.epochs * ((len(pairs) + config.batch_size - 1) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.learning_rate, total_steps=steps, pct_start=0.1
    )

    def encode(texts: list[str]) -> torch.Tensor:
        batch = tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in batch])
        mask = torch.tensor([e.attention_mask for e in batch])
        hidden = model(
            input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)
        ).last_hidden_state
        weights = mask.unsqueeze(-1).float()
        pooled = (hidden * weights).sum(1) / weights.sum(1)
        return torch.nn.functional.normalize(pooled, dim=-1)

    model.train()
    order = list(range(len(pairs)))
    for epoch in range(config.epochs):
        rng.shuffle(order)
        started, total = time.time(), 0.0
        for start in range(0, len(order), config.batch_size):
            chunk = [pairs[i] for i in order[start : start + config.batch_size]]
            labels = torch.tensor([p.duplicate for p in chunk], dtype=torch.float32)
            vectors = encode([p.text_a for p in chunk] + [p.text_b for p in chunk])
            cos = (vectors[: len(chunk)] * vectors[len(chunk) :]).sum(-1) * config.cosent_scale
            # CoSENT: penalise every (non-duplicate, duplicate) pair ordered the wrong way.
            diff = cos[:, None] - cos[None, :]
            wrong = (labels[:, None] < labels[None, :]).float()
            diff = diff - (1 - wrong) * 1e12
            loss = torch.logsumexp(torch.cat([torch.zeros(1), diff.flatten()]), dim=0)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss)
        batches = (len(order) + config.batch_size - 1) // config.batch_size
        print(f"epoch {epoch + 1}: loss {total / batches:.4f} ({time.time() - started:.0f}s)")

    return {
        key: value
        for name, (a, b) in factors.items()
        for key, value in (
            (f"{name}.A", a.detach().numpy().astype(np.float16)),
            (f"{name}.B", (b.detach() * scale).numpy().astype(np.float16)),
        )
    }


# --------------------------------------------------------------------------- verifier


def pair_similarities(embedder: LocalMiniLMEmbedder, pairs: list[LabelledPair]) -> np.ndarray:
    """Cosine similarity of each pair under ``embedder`` (batched, length-sorted)."""
    texts = [p.text_a for p in pairs] + [p.text_b for p in pairs]
    order = np.argsort([len(t) for t in texts])
    vectors = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(texts), 64):
        idx = order[start : start + 64]
        vectors[idx] = embedder.embed([texts[i] for i in idx])
    n = len(pairs)
    return (vectors[:n] * vectors[n:]).sum(1)


def feature_matrix(pairs: list[LabelledPair], sims: np.ndarray) -> np.ndarray:
    return np.array(
        [features(p.text_a, p.text_b, float(s)) for p, s in zip(pairs, sims, strict=True)]
    )


def fit_verifier(x: np.ndarray, y: np.ndarray, *, seed: int) -> TreeEnsemble:
    """Gradient-boosted trees, monotone increasing in the cosine similarity."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    monotone = [1 if name == "similarity" else 0 for name in FEATURE_NAMES]
    clf = HistGradientBoostingClassifier(
        max_iter=150,
        learning_rate=0.05,
        max_leaf_nodes=8,
        min_samples_leaf=30,
        l2_regularization=1.0,
        monotonic_cst=monotone,
        random_state=seed,
    )
    clf.fit(x, y)
    return TreeEnsemble.from_sklearn(clf, FEATURE_NAMES)


def out_of_fold_probabilities(
    x: np.ndarray, y: np.ndarray, *, seed: int, folds: int = 5
) -> np.ndarray:
    """Verifier probabilities for each row from a model that did not see that row."""
    fold = np.random.default_rng(seed).permutation(len(y)) % folds
    probs = np.zeros(len(y))
    for k in range(folds):
        held = fold == k
        probs[held] = fit_verifier(x[~held], y[~held], seed=seed).predict_proba(x[held])
    return probs


@dataclass(frozen=True, slots=True)
class Operating:
    high: float
    low: float
    min_probability: float
    precision: float
    recall: float


def choose_operating_point(
    *,
    sims: np.ndarray,
    probs: np.ndarray,
    guarded: np.ndarray,
    y: np.ndarray,
    target: float,
    min_recall: float = 0.15,
) -> Operating:
    """Pick (low, high, p) maximising recall at precision >= ``target`` on calibration data.

    If no point reaches ``target``, the most precise point with recall >= ``min_recall`` is
    taken instead (a cache must prefer misses to wrong answers). ``high`` is where the cosine
    alone is precise enough to skip the verifier; ``low`` is the cosine below which the verifier
    almost never says yes, so it need not run there.
    """
    candidates: list[Operating] = []
    positives = max(int(y.sum()), 1)
    for p_min in np.arange(0.50, 0.99, 0.01):
        verified = probs >= p_min
        if not verified.any():
            continue
        low = float(np.quantile(sims[verified], 0.01))
        for high in np.arange(0.90, 1.0001, 0.005):
            hit = ~guarded & ((sims >= high) | verified)
            tp, n_hit = int((hit & y).sum()), int(hit.sum())
            if n_hit < 20:
                continue
            candidates.append(
                Operating(
                    high=round(float(high), 3),
                    low=round(min(low, float(high)), 3),
                    min_probability=round(float(p_min), 2),
                    precision=tp / n_hit,
                    recall=tp / positives,
                )
            )
    reaching = [c for c in candidates if c.precision >= target]
    if reaching:
        return max(reaching, key=lambda c: (c.recall, c.precision))
    floor = [c for c in candidates if c.recall >= min_recall] or candidates
    if not floor:
        raise RuntimeError("no operating point has at least 20 hits")
    return max(floor, key=lambda c: (c.precision, c.recall))


# Cached answers are worth less when a near-miss is costly (code, maths, extraction) and more
# when many answers would do (creative, chat): these offsets encode that judgement on top of the
# measured default. They were not fitted to data (no labelled pairs per task type exist).
TASK_OFFSETS: dict[str, tuple[float, float]] = {
    "default": (0.0, 0.0),
    "chat": (0.0, 0.0),
    "reasoning": (0.005, 0.02),
    "summarization": (0.0, 0.0),
    "creative": (-0.005, -0.02),
    "translation": (0.01, 0.03),
    "extraction": (0.01, 0.03),
    "code": (0.01, 0.04),
    "math": (0.01, 0.04),
}


def train(
    *,
    pairs_path: Path,
    fmt: PairFormat = "qqp",
    config: TrainConfig,
    out_dir: Path,
    reuse_adapter: bool = False,
) -> dict[str, object]:
    """Train adapter + verifier on the tune split of ``pairs_path`` and write the artefacts."""
    from sklearn.metrics import roc_auc_score

    tune = select_split(read_pairs(pairs_path, fmt=fmt), split="tune")
    part_a = [p for p in tune if part_of(p) == "A"]
    part_b = [p for p in tune if part_of(p) == "B"]
    print(f"tune pairs: {len(tune)} (adapter {len(part_a)}, verifier {len(part_b)})")

    started = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    adapter_path = out_dir / ADAPTER_PATH.name
    if reuse_adapter and adapter_path.exists():
        print(f"reusing {adapter_path}")  # e.g. after changing only the lexical features
    else:
        np.savez_compressed(adapter_path, **train_adapter(part_a, config=config))  # type: ignore[arg-type]
    print(f"adapter: {adapter_path} ({adapter_path.stat().st_size / 1e6:.2f} MB)")

    embedder = LocalMiniLMEmbedder(adapter_path=adapter_path)
    sims = pair_similarities(embedder, part_b)
    y = np.array([p.duplicate for p in part_b])
    x = feature_matrix(part_b, sims)
    guarded = np.array([guard_violation(p.text_a, p.text_b) is not None for p in part_b])
    ensemble = fit_verifier(x, y, seed=config.seed)
    verifier_path = out_dir / VERIFIER_PATH.name
    ensemble.save(verifier_path)
    # Thresholds are chosen on out-of-fold probabilities: in-sample ones flatter the verifier.
    probs = out_of_fold_probabilities(x, y, seed=config.seed)
    op = choose_operating_point(
        sims=sims, probs=probs, guarded=guarded, y=y, target=config.target_precision
    )
    report = {
        "embedder": embedder.version,
        "seed": config.seed,
        "pairs": pairs_path.name,
        "adapter_pairs": len(part_a),
        "verifier_pairs": len(part_b),
        "cosine_auc_part_b": round(float(roc_auc_score(y, sims)), 4),
        "verifier_auc_part_b_out_of_fold": round(float(roc_auc_score(y, probs)), 4),
        "calibration": {
            "target_precision": config.target_precision,
            "precision": round(op.precision, 4),
            "recall": round(op.recall, 4),
        },
        "train_seconds": round(time.time() - started),
    }
    config_doc = {
        "thresholds": {
            task: {
                "high": round(min(op.high + d_cos, 0.999), 3),
                "low": round(min(op.low + d_cos, op.high + d_cos), 3),
                "min_verifier_probability": round(min(op.min_probability + d_p, 0.99), 2),
            }
            for task, (d_cos, d_p) in TASK_OFFSETS.items()
        },
        "training": report,
    }
    (out_dir / DECISION_CONFIG_PATH.name).write_text(json.dumps(config_doc, indent=2) + "\n")
    print(json.dumps(config_doc, indent=2))
    return config_doc


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=Path, default=DEFAULT_QQP_PATH)
    parser.add_argument("--format", choices=["qqp", "mrpc"], default="qqp")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--out", type=Path, default=ARTIFACTS_DIR)
    parser.add_argument(
        "--reuse-adapter", action="store_true", help="keep an existing adapter in --out"
    )
    args = parser.parse_args(argv)
    config = TrainConfig(seed=args.seed, epochs=args.epochs)
    train(
        pairs_path=args.pairs,
        fmt=args.format,
        config=config,
        out_dir=args.out,
        reuse_adapter=args.reuse_adapter,
    )


if __name__ == "__main__":
    main()
