"""Properties of the canonical cache key (caching/keys.py) over arbitrary requests.

canonical_hash sorts keys (at every depth) and drops top-level None; it does not normalise text, so
whitespace inside a message is part of the answer's identity and changes the key.
"""

from __future__ import annotations

import uuid
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from caching.keys import canonical_hash, exact_key, intermediate_key, singleflight_key

SETTINGS = settings(max_examples=150, deadline=None)

text = st.text(max_size=40)
json_leaf = st.none() | st.booleans() | st.integers(-10**6, 10**6) | text
json_value = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(text, inner, max_size=4), max_leaves=12)
message = st.tuples(st.sampled_from(["system", "user", "assistant", "tool"]), text)
tool = st.fixed_dictionaries({"name": text, "description": text,
                              "parameters": st.dictionaries(text, json_value, max_size=3)})
request = st.fixed_dictionaries({
    "model": st.text(min_size=1, max_size=20),
    "messages": st.lists(message, min_size=1, max_size=4),
    "temperature": st.none() | st.floats(0, 2, allow_nan=False),
    "tools": st.lists(tool, max_size=2),
    "extra": st.none() | st.dictionaries(text, json_value, max_size=3),
})


def _reordered(value: Any, rng: st.DataObject) -> Any:
    """The same JSON value with every object's keys in another order."""
    if isinstance(value, dict):
        items = [(k, _reordered(v, rng)) for k, v in value.items()]
        return dict(rng.draw(st.permutations(items)))
    if isinstance(value, list):
        return [_reordered(v, rng) for v in value]
    return value


@SETTINGS
@given(req=request, data=st.data())
def test_key_order_does_not_change_the_key(req: dict[str, Any], data: st.DataObject) -> None:
    assert canonical_hash(_reordered(req, data)) == canonical_hash(req)


@SETTINGS
@given(req=request, absent=st.sampled_from(["temperature", "extra", "seed"]))
def test_a_none_field_is_the_same_as_an_absent_one(req: dict[str, Any], absent: str) -> None:
    without = {k: v for k, v in req.items() if k != absent}
    assert canonical_hash({**without, absent: None}) == canonical_hash(without)


@SETTINGS
@given(req=request, data=st.data())
def test_a_field_that_changes_the_answer_changes_the_key(req: dict[str, Any],
                                                        data: st.DataObject) -> None:
    field = data.draw(st.sampled_from(["model", "messages", "temperature", "tools"]))
    strategy = {"model": st.text(min_size=1, max_size=20),
                "messages": st.lists(message, min_size=1, max_size=4),
                "temperature": st.floats(0, 2, allow_nan=False),
                "tools": st.lists(tool, min_size=1, max_size=2)}[field]
    other = data.draw(strategy.filter(lambda v: v != req[field]))
    assert canonical_hash({**req, field: other}) != canonical_hash(req)


@SETTINGS
@given(req=request, index=st.integers(0, 3), pad=st.sampled_from([" ", "\n", "\t", "  "]))
def test_whitespace_in_a_message_is_not_normalised(req: dict[str, Any], index: int,
                                                   pad: str) -> None:
    messages = list(req["messages"])
    role, content = messages[index % len(messages)]
    messages[index % len(messages)] = (role, content + pad)
    assert canonical_hash({**req, "messages": messages}) != canonical_hash(req)


@SETTINGS
@given(req=request, a=st.uuids(), b=st.uuids(), doc=text, step=text)
def test_organizations_never_share_a_key(req: dict[str, Any], a: uuid.UUID, b: uuid.UUID,
                                         doc: str, step: str) -> None:
    digest = canonical_hash(req)
    if a == b:
        return
    for build in (exact_key, singleflight_key):
        assert build(a, digest) != build(b, digest)
        assert str(a) in build(a, digest)
    assert intermediate_key(a, doc, step, req["model"]) != intermediate_key(b, doc, step,
                                                                            req["model"])
