"""The one error of the views package: a ViewDefinition that cannot be used.

Raised for a view that breaks a rule of SQL-on-FHIR v2 (structure, names, FHIRPath syntax, unionAll
column sets) and for one that fails on the data (a column that yields several values without
``collection: true``, a ``where`` path that is not boolean). Its hints name the location in the view
and the rule, never a value from a resource: a node's resources are patient data.
"""

from __future__ import annotations

from common.errors import ErrorCode, InputError

__all__ = ["InvalidViewError"]


class InvalidViewError(InputError):
    """The ViewDefinition is not valid, or cannot be evaluated as written."""

    default_code = ErrorCode.INVALID_VIEW

    def at(self, location: str) -> InvalidViewError:
        """The same error with ``location`` put before each hint (or as the only hint)."""
        hints = [f"{location}: {hint}" for hint in self.hints] or [location]
        return InvalidViewError(self.code, detail=self.detail, hints=hints)
