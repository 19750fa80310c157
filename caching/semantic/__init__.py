"""Tier-2 semantic cache brain: embedders, the hit/miss decision procedure and its evaluation.

Public entry points:
  * :func:`caching.semantic.embedders.get_local_embedder` - offline sentence embedder (singleton).
  * :func:`caching.semantic.decision.decide` - should a cached answer be served for this prompt?
  * :func:`caching.semantic.evaluation.evaluate` - precision/recall of the shipped procedure on pairs.
"""
