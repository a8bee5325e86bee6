"""Typed identifiers, so a node id can never be passed where a job id is expected."""

from __future__ import annotations

from typing import NewType

__all__ = ["JobId", "NodeId", "ResourceId", "RoundId", "TokenId"]

NodeId = NewType("NodeId", str)
JobId = NewType("JobId", str)
RoundId = NewType("RoundId", int)
ResourceId = NewType("ResourceId", str)
TokenId = NewType("TokenId", int)
