"""Errors of the FHIRPath engine: a syntax error (found when a path is compiled) and an evaluation
error (found when a compiled path meets data). Both are :class:`InvalidViewError`, so a caller that
forgets to add a location still raises an error with a code and a public message."""

from __future__ import annotations

from node.views.errors import InvalidViewError

__all__ = ["FhirPathEvaluationError", "FhirPathSyntaxError"]


class FhirPathSyntaxError(InvalidViewError):
    """The text is not a FHIRPath expression this engine supports; the hint names the rule and offset."""

    def __init__(self, rule: str, offset: int) -> None:
        super().__init__(detail=f"FHIRPath syntax: {rule} at offset {offset}", hints=[f"{rule} (offset {offset})"])
        self.rule = rule
        self.offset = offset


class FhirPathEvaluationError(InvalidViewError):
    """A compiled expression cannot be evaluated on its input (e.g. a singleton operator given many items)."""

    def __init__(self, rule: str) -> None:
        super().__init__(detail=f"FHIRPath evaluation: {rule}", hints=[rule])
        self.rule = rule
