"""Routing errors; each carries the HTTP status the API layer should answer with."""

from __future__ import annotations

from collections.abc import Sequence


class RoutingError(Exception):
    """Base class: `status_code` and `as_dict()` let the HTTP layer render any routing error."""

    status_code = 400
    code = "routing_error"

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "message": str(self)}


class InvalidRoutingInput(RoutingError):
    """A request field has a value the router does not understand (400)."""

    status_code = 400
    code = "invalid_routing_input"

    def __init__(self, field: str, message: str, valid_values: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
        self.valid_values = tuple(valid_values)

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "field": self.field,
            "message": self.message,
            "valid_values": list(self.valid_values),
        }


class InfeasibleConstraints(RoutingError):
    """No candidate meets all constraints; names the binding one and the closest choice (400)."""

    status_code = 400
    code = "infeasible_constraints"

    def __init__(self, constraint: str, message: str, closest_feasible: str | None) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.message = message
        self.closest_feasible = closest_feasible

    def as_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "constraint": self.constraint,
            "message": self.message,
            "closest_feasible": self.closest_feasible,
        }


class ModelNotAllowed(RoutingError):
    """An explicit model_override names a model this key may not use (403)."""

    status_code = 403
    code = "model_not_allowed"

    def __init__(self, model: str, message: str | None = None) -> None:
        super().__init__(message or f"Model {model!r} is not allowed for this key.")
        self.model = model


class NoModelsAvailable(RoutingError):
    """Every candidate is unhealthy or filtered out (503)."""

    status_code = 503
    code = "no_models_available"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
