"""`{{ value|usd }}`: dollar amounts on the dashboard, readable at every size."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

register = template.Library()

SIGNIFICANT = 4
MAX_PLACES = 9  # the ledger's resolution (nano-dollars)


def format_usd(value: Any) -> str:
    """Cents from a dollar up; below that, enough places for four significant digits (a request
    often costs a few millionths of a dollar), never scientific notation.

    0 -> $0.00, 0.5 -> $0.50, 0.000048 -> $0.000048, 0.1234567 -> $0.1235, 1234.5 -> $1,234.50.
    """
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not amount.is_finite():
        return str(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    if amount >= 1:
        return f"{sign}${amount:,.2f}"
    places = MAX_PLACES if amount == 0 else min(MAX_PLACES, max(2, SIGNIFICANT - 1
                                                                - amount.adjusted()))
    whole, _, frac = f"{amount:.{places}f}".partition(".")
    frac = frac.rstrip("0").ljust(2, "0")
    if whole == "0" and frac.strip("0") == "":
        sign = ""  # a rounded-away amount is not negative
    return f"{sign}${whole}.{frac}"


@register.filter
def usd(value: Any) -> str:
    return format_usd(value)
