"""JSON columns: objects in, objects out, with a size bound so one row cannot grow without limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from common.errors import ErrorCode, InputError

__all__ = ["JsonObject", "dump_object", "load_object"]

JsonObject = dict[str, Any]


def dump_object(value: Mapping[str, Any], *, what: str, max_bytes: int = 1024 * 1024) -> str:
    """``value`` as JSON text; InputError when it is not a JSON object or is larger than ``max_bytes``."""
    if not isinstance(value, Mapping):
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{what} is not a JSON object", hints=[f"{what}: type"])
    try:
        text = orjson.dumps(dict(value), option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{what} is not JSON", hints=[f"{what}: type"]) from exc
    if len(text) > max_bytes:
        raise InputError(ErrorCode.INVALID_REQUEST, detail=f"{what} is too large", hints=[f"{what}: too large"])
    return text.decode()


def load_object(text: str | None) -> JsonObject | None:
    """The object stored as ``text`` (None stays None)."""
    if text is None:
        return None
    loaded: JsonObject = orjson.loads(text)
    return loaded
