"""A tiny, dependency-free evaluator for the verifier's gradient-boosted trees.

Training uses scikit-learn; shipping its pickles would tie the artefact to one scikit-learn
version and execute code on load. Instead the trees are flattened into plain arrays (``.npz``)
and walked here with numpy, all trees at once: ~30 µs per pair, thread-safe (read-only arrays).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

VERIFIER_PATH = Path(__file__).resolve().parents[1] / "artifacts" / "semantic_verifier.npz"


@dataclass(frozen=True)
class TreeEnsemble:
    """Binary-classification tree ensemble: p = sigmoid(baseline + sum of leaf values)."""

    feature: np.ndarray  # int32 [nodes]
    threshold: np.ndarray  # float64 [nodes]; go left when x <= threshold
    left: np.ndarray  # int32 [nodes], absolute node index
    right: np.ndarray  # int32 [nodes]
    missing_left: np.ndarray  # bool [nodes]
    leaf: np.ndarray  # bool [nodes]
    value: np.ndarray  # float64 [nodes]
    roots: np.ndarray  # int32 [trees]
    baseline: float
    depth: int
    # The feature vector the trees were trained on; a verifier is only used with the same one.
    feature_names: tuple[str, ...] = ()

    @classmethod
    def from_sklearn(cls, clf: Any, feature_names: tuple[str, ...] = ()) -> TreeEnsemble:
        """Flatten a fitted binary ``HistGradientBoostingClassifier``."""
        parts: dict[str, list[np.ndarray]] = {k: [] for k in ("f", "t", "l", "r", "m", "leaf", "v")}
        roots, offset, depth = [], 0, 0
        for (predictor,) in clf._predictors:
            nodes = predictor.nodes
            roots.append(offset)
            parts["f"].append(nodes["feature_idx"].astype(np.int32))
            parts["t"].append(nodes["num_threshold"].astype(np.float64))
            parts["l"].append(nodes["left"].astype(np.int32) + offset)
            parts["r"].append(nodes["right"].astype(np.int32) + offset)
            parts["m"].append(nodes["missing_go_to_left"].astype(bool))
            parts["leaf"].append(nodes["is_leaf"].astype(bool))
            parts["v"].append(nodes["value"].astype(np.float64))
            depth = max(depth, int(nodes["depth"].max()))
            offset += len(nodes)
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        return cls(
            feature=cat["f"], threshold=cat["t"], left=cat["l"], right=cat["r"],
            missing_left=cat["m"], leaf=cat["leaf"], value=cat["v"],
            roots=np.asarray(roots, dtype=np.int32),
            baseline=float(np.ravel(clf._baseline_prediction)[0]), depth=depth,
            feature_names=tuple(feature_names),
        )  # fmt: skip

    def save(self, path: Path) -> None:
        np.savez_compressed(
            path, feature=self.feature, threshold=self.threshold, left=self.left,
            right=self.right, missing_left=self.missing_left, leaf=self.leaf, value=self.value,
            roots=self.roots, baseline=np.float64(self.baseline), depth=np.int32(self.depth),
            feature_names=np.array(self.feature_names, dtype=str),
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> TreeEnsemble:
        with np.load(path) as data:
            return cls(
                feature=data["feature"], threshold=data["threshold"], left=data["left"],
                right=data["right"], missing_left=data["missing_left"], leaf=data["leaf"],
                value=data["value"], roots=data["roots"], baseline=float(data["baseline"]),
                depth=int(data["depth"]),
                feature_names=tuple(str(n) for n in data["feature_names"])
                if "feature_names" in data.files else (),
            )  # fmt: skip

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Probability of "same meaning" for each row of ``x`` ([n, features] or [features])."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        node = np.broadcast_to(self.roots, (x.shape[0], self.roots.size)).copy()
        rows = np.arange(x.shape[0])[:, None]
        for _ in range(self.depth):
            values = x[rows, self.feature[node]]
            go_left = np.where(
                np.isnan(values), self.missing_left[node], values <= self.threshold[node]
            )
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(self.leaf[node], node, nxt)
        raw = self.baseline + self.value[node].sum(axis=1)
        return 1.0 / (1.0 + np.exp(-raw))
