"""Dollar amounts on the console's pages keep their digits (never $0.0000 beside rows that add up
to more, never scientific notation). The dashboard page itself is tested in tests/console."""

from __future__ import annotations

from decimal import Decimal

import pytest

from analytics.templatetags.money import format_usd

pytestmark = [pytest.mark.urls("tests.analytics.urls"), pytest.mark.django_db]


@pytest.mark.parametrize(("value", "shown"), [
    (0, "$0.00"), (Decimal("0.000048"), "$0.000048"), (4.829e-05, "$0.00004829"),
    (0.1234567, "$0.1235"), (0.5, "$0.50"), (1234.5, "$1,234.50"), (-0.0012, "-$0.0012"),
    (Decimal("0.000000001"), "$0.000000001"), (1e-12, "$0.00"), (12.345678, "$12.35"),
])
def test_format_usd(value, shown: str) -> None:
    assert format_usd(value) == shown
