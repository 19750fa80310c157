"""Strict JSON input for the DRF endpoints: the body parser, the base serializer and money fields.

DRF is lenient by default: a CharField takes ``5`` as ``"5"``, an IntegerField ``"5"`` or ``true``,
a BooleanField ``"yes"``. Asahi's API says what type each field has (OpenAPI), and a client that
sends another type has a bug it should hear about, so every field takes exactly its JSON type and
the 400 names it. The hot-path endpoints apply the same rules in `inference.validation`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.parsers import JSONParser

from asahi_project.textrules import check_json_text

# The largest value of a PostgreSQL integer column: a bigger one is a 400 here, not a database
# error (a 500) at save time.
PG_INT_MAX = 2_147_483_647


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing NUL (and lone surrogates) anywhere in the body with a 400 that
    names the field: PostgreSQL cannot store them, in text or in JSONB."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        check_json_text(data)
        return data


@extend_schema_field({"oneOf": [
    {"type": "number"},
    {"type": "string", "format": "decimal", "pattern": r"^-?\d{0,11}(?:\.\d{0,9})?$"}]})
class MoneyField(serializers.DecimalField):
    """USD to the nano-dollar: a JSON number, or a decimal string when every digit matters."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=20, decimal_places=9, **kwargs)


def json_type_problem(field: serializers.Field, value: Any) -> str | None:
    """Why `value` is not of the JSON type `field` takes, or None (null is the field's call)."""
    if value is None:
        return None
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "must be true or false"
    if isinstance(field, serializers.IntegerField):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "must be an integer"
    if isinstance(field, serializers.DecimalField):
        ok = isinstance(value, int | float | str) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if isinstance(field, serializers.FloatField):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return None if ok else "must be a number"
    if isinstance(field, serializers.CharField | serializers.ChoiceField):
        return None if isinstance(value, str) else "must be a string"
    if isinstance(field, serializers.ListField):
        if not isinstance(value, list):
            return "must be an array"
        for i, item in enumerate(value):
            problem = json_type_problem(field.child, item)
            if problem:
                return f"item {i} {problem}"
        return None
    if isinstance(field, serializers.DictField):
        return None if isinstance(value, dict) else "must be an object"
    return None


class StrictSerializer(serializers.Serializer):
    """Rejects unknown fields, so a typo in a policy update is an error rather than silently
    ignored, and values of the wrong JSON type (see `json_type_problem`)."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {name: ["unknown field"] for name in unknown}
                )
            wrong = {name: [problem] for name, value in data.items()
                     if (problem := json_type_problem(self.fields[name], value))}
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)
