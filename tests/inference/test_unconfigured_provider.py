"""A provider whose SDK refuses to start (no API key anywhere) is a provider failure, not a 500.

Found by the soak: with only OPENAI_API_KEY set, /infer's router picked a Cohere model and the
Cohere SDK's constructor raised, which escaped as a 500. It is now a ProviderError of kind
"server": the fallback chain moves on to the next model, and if none answers the client gets the
gateway's upstream error in the error shape.
"""

from __future__ import annotations

import pytest

from inference.providers.errors import ProviderError
from inference.providers.registry import make_adapter


def test_a_provider_without_credentials_fails_as_a_provider(monkeypatch) -> None:
    for var in ("CO_API_KEY", "COHERE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(ProviderError) as info:
        make_adapter("cohere")
    assert info.value.kind == "server" and not info.value.retryable
    assert "cohere provider is not usable" in str(info.value)
