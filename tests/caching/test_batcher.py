"""The embedding batcher: a lone request runs at once; requests that arrive during a pass share
the next one; every caller gets its own vector; a failure reaches every waiter of its pass."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from caching.semantic.batcher import EmbedBatcher


class _SlowEmbedder:
    """Stands in for the model: a vector that encodes the text, after a pass that takes time."""

    def __init__(self, seconds: float = 0.05) -> None:
        self.seconds = seconds
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def embed(self, texts: list[str]) -> np.ndarray:
        self.gate.wait(5)
        self.batches.append(list(texts))
        time.sleep(self.seconds)
        if any(t == "boom" for t in texts):
            raise RuntimeError("model failed")
        return np.array([[float(len(t)), float(ord(t[0]))] for t in texts])


def test_a_lone_request_runs_at_once_in_a_batch_of_one() -> None:
    embedder = _SlowEmbedder(seconds=0.0)
    batcher = EmbedBatcher(embedder)
    started = time.perf_counter()
    vector = batcher.submit("hello").result(timeout=5)
    assert time.perf_counter() - started < 0.5
    assert list(vector) == [5.0, float(ord("h"))]
    assert embedder.batches == [["hello"]]


def test_requests_arriving_during_a_pass_share_the_next_one() -> None:
    embedder = _SlowEmbedder(seconds=0.02)
    batcher = EmbedBatcher(embedder, max_batch=16)
    embedder.gate.clear()  # hold the first pass while the others queue up
    first = batcher.submit("a")
    time.sleep(0.05)
    texts = [f"{chr(98 + i)}{'x' * i}" for i in range(12)]
    futures = [batcher.submit(t) for t in texts]
    embedder.gate.set()
    assert first.result(timeout=5)[0] == 1.0
    for text, future in zip(texts, futures, strict=True):
        assert list(future.result(timeout=5)) == [float(len(text)), float(ord(text[0]))]
    # One pass for all twelve, shortest first (they fit the character budget together).
    assert len(embedder.batches) == 2 and embedder.batches[1] == sorted(texts, key=len)
    assert batcher.passes == 2 and batcher.embedded == 13


def test_a_failed_pass_fails_its_waiters_and_the_batcher_goes_on() -> None:
    embedder = _SlowEmbedder(seconds=0.0)
    batcher = EmbedBatcher(embedder)
    with pytest.raises(RuntimeError, match="model failed"):
        batcher.submit("boom").result(timeout=5)
    assert batcher.submit("fine").result(timeout=5)[0] == 4.0


def test_a_cancelled_request_is_not_embedded() -> None:
    embedder = _SlowEmbedder(seconds=0.0)
    batcher = EmbedBatcher(embedder)
    embedder.gate.clear()
    batcher.submit("first")
    time.sleep(0.05)
    gone = batcher.submit("given up")
    assert gone.cancel()
    embedder.gate.set()
    assert batcher.submit("last").result(timeout=5)[0] == 4.0
    assert ["given up"] not in embedder.batches and all("given up" not in b
                                                       for b in embedder.batches)


def test_long_prompts_get_passes_of_their_own() -> None:
    embedder = _SlowEmbedder(seconds=0.0)
    batcher = EmbedBatcher(embedder, max_chars=100)
    embedder.gate.clear()
    batcher.submit("first")
    time.sleep(0.05)
    texts = ["s1", "L" * 90, "s2", "M" * 80, "s3"]
    futures = [batcher.submit(t) for t in texts]
    embedder.gate.set()
    for text, future in zip(texts, futures, strict=True):
        assert future.result(timeout=5)[0] == float(len(text))
    assert embedder.batches[1:] == [["s1", "s2", "s3", "M" * 80], ["L" * 90]]
