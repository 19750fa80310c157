"""Coalesces concurrent embedding requests into one forward pass.

One thread owns the embedder. A request submitted while it is idle runs at once, alone: a lone
request never waits for company. Requests that arrive while a pass is running queue up, and the
next pass takes all of them (up to ``max_batch``). So the batch size follows the load by itself,
with no timer: at one connection every pass is a batch of one; at sixteen, the passes grow and
each prompt costs less CPU (on 2 cores, ~2.9 ms of CPU per prompt in batches of 8 against ~4.3 ms
alone, measured under load), and no more than one forward pass competes for the cores at a time
(concurrent passes on executor threads oversubscribed them: the miss path at 16 connections gave
57 req/s before this batcher and 84 with it, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any, TypeVar

logger = logging.getLogger("asahi.cache")


T = TypeVar("T")


def take_batch(source: queue.SimpleQueue[T], limit: int) -> list[T]:
    """Wait for one item, then take whatever else is already waiting, up to ``limit``: the
    batch grows with the load and never waits for company."""
    batch = [source.get()]
    while len(batch) < limit:
        try:
            batch.append(source.get_nowait())
        except queue.Empty:
            break
    return batch


def passes(batch: list[tuple[str, Any]], max_chars: int) -> list[list[tuple[str, Any]]]:
    """Split a batch into forward passes of at most ``max_chars`` characters (at least one
    prompt each), shortest first: a pass pads every prompt to its longest, and one pass full of
    long prompts would keep every short one in it waiting for all of them."""
    out: list[list[tuple[str, Any]]] = []
    size = 0
    for item in sorted(batch, key=lambda item: len(item[0])):
        if out and size + len(item[0]) <= max_chars:
            out[-1].append(item)
            size += len(item[0])
        else:
            out.append([item])
            size = len(item[0])
    return out


class EmbedBatcher:
    def __init__(self, embedder: Any, *, max_batch: int = 16, max_chars: int = 2_000) -> None:
        self.embedder = embedder
        self.max_batch = max_batch
        self.max_chars = max_chars
        self._queue: queue.SimpleQueue[tuple[str, Future[Any]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="asahi-embed", daemon=True)
        self._thread.start()
        self.passes = 0
        self.embedded = 0

    def submit(self, text: str) -> Future[Any]:
        """A future of ``text``'s vector."""
        future: Future[Any] = Future()
        self._queue.put((text, future))
        return future

    def _run(self) -> None:
        while True:
            batch = take_batch(self._queue, self.max_batch)
            # A caller that gave up (its time budget ran out) needs no vector.
            batch = [item for item in batch if item[1].set_running_or_notify_cancel()]
            for chunk in passes(batch, self.max_chars):
                self._embed(chunk)

    def _embed(self, chunk: list[tuple[str, Future[Any]]]) -> None:
        try:
            vectors = self.embedder.embed([text for text, _ in chunk])
        except Exception as exc:  # every waiter learns of it; the thread lives on
            for _, future in chunk:
                future.set_exception(exc)
            return
        self.passes += 1
        self.embedded += len(chunk)
        for (_, future), vector in zip(chunk, vectors, strict=True):
            future.set_result(vector)


_batchers: dict[int, EmbedBatcher] = {}
_lock = threading.Lock()


def batcher_for(embedder: Any) -> EmbedBatcher:
    """The one batcher of ``embedder`` in this process (embedders are process-wide singletons)."""
    key = id(embedder)
    found = _batchers.get(key)
    if found is None:
        with _lock:
            found = _batchers.get(key)
            if found is None:
                found = _batchers[key] = EmbedBatcher(embedder)
    return found
