"""Parse a FHIR search request into a :class:`SearchQuery`, without touching the database.

Supported, as the CapabilityStatement says: token (``code``, ``system|code``, ``|code``,
``system|``; modifier ``:not``), string (prefix match over case- and accent-folded text; ``:exact``,
``:contains``), date (prefixes eq ne gt lt ge le sa eb ap; the precision of the value is its range),
reference (``Type/id``, ``id`` with a single or ``:Type``-modified target, absolute URLs), ``:missing``
on every parameter, ``_id``, ``_lastUpdated``, ``_count`` (0 means the total only), ``_sort``,
``_include`` and ``_revinclude`` (no ``:iterate``), ``_total``. Repeated parameters are ANDed,
comma-separated values ORed. Unknown parameters are ignored, as the FHIR spec allows and fhirpy needs
(it sends ``_totalMethod``); the self link lists only the parameters that were used.

Error hints name the parameter, never its value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import orjson

from common.errors import ErrorCode, InputError
from node.fhir.dates import fhir_range
from node.fhir.extract import normalize_string, parse_reference
from node.fhir.resource_types import R4_RESOURCE_TYPES
from node.fhir.search_params import SearchParam, search_param

__all__ = [
    "Criterion",
    "DateValue",
    "Include",
    "MissingValue",
    "ReferenceValue",
    "SearchQuery",
    "SortKey",
    "StringValue",
    "TokenValue",
    "decode_page_token",
    "encode_page_token",
    "parse_search",
]

DATE_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")
IGNORED_RESULT_PARAMS = frozenset({"_format", "_pretty", "_elements", "_summary", "_totalMethod"})
_SPECIAL_PARAMS = {"_id": "token", "_lastUpdated": "date"}
ParamKind = Literal["token", "string", "date", "reference"]


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``system`` None matches any system, "" matches codes without a system; ``code`` None any code."""

    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string search value, already normalised unless the modifier is ``exact``."""

    value: str


@dataclass(frozen=True, slots=True)
class DateValue:
    """A date search value: a prefix and the half-open range its precision stands for."""

    prefix: str
    low: int
    high: int


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A reference search value; ``target_type`` None means any of the parameter's targets."""

    target_type: str | None
    target_id: str


@dataclass(frozen=True, slots=True)
class MissingValue:
    """``param:missing=true|false``."""

    missing: bool


SearchValue = TokenValue | StringValue | DateValue | ReferenceValue | MissingValue


@dataclass(frozen=True, slots=True)
class Criterion:
    """One search parameter occurrence; its values are ORed."""

    name: str
    kind: ParamKind
    modifier: str | None
    values: tuple[SearchValue, ...]


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key."""

    name: str
    kind: ParamKind | Literal["_id", "_lastUpdated"]
    descending: bool


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=Source:param[:Target]`` or ``_revinclude=Source:param[:Target]``."""

    source_type: str
    param: str
    target_type: str | None


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: criteria (ANDed), paging, sorting, includes, and the parameters used."""

    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    count: int = 50
    offset: int = 0
    sort: tuple[SortKey, ...] = ()
    includes: tuple[Include, ...] = ()
    revincludes: tuple[Include, ...] = ()
    with_total: bool = True
    used_params: tuple[tuple[str, str], ...] = field(default=())


def _bad(name: str, why: str) -> InputError:
    return InputError(ErrorCode.INVALID_SEARCH, hints=[f"{_safe_name(name)}: {why}"])


def _safe_name(name: str) -> str:
    """A parameter's name for a hint. Names come from the request: the base name (a parameter this server
    knows by the time a hint is made; unknown ones are ignored) is shown when it looks like one, and a
    modifier only when it is one this server knows (a modifier or a resource type), else ``?``."""
    base, colon, modifier = name.partition(":")
    shown = base if len(base) <= 80 and all(c.isalnum() or c in "-_." for c in base) else "?"
    if colon:
        shown += ":" + (modifier if modifier in _KNOWN_MODIFIERS or modifier in R4_RESOURCE_TYPES else "?")
    return shown


def _split_values(raw: str) -> list[str]:
    """Split on commas that are not escaped as ``\\,``."""
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in raw:
        if escaped:
            current.append(char if char in ",|$\\" else "\\" + char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_token(name: str, raw: str) -> TokenValue:
    if "|" in raw:
        system, code = raw.split("|", 1)
        if not system and not code:
            raise _bad(name, "empty token")
        return TokenValue(system=system, code=code or None)
    if not raw:
        raise _bad(name, "empty token")
    return TokenValue(system=None, code=raw)


def _parse_date(name: str, raw: str) -> DateValue:
    prefix = "eq"
    if len(raw) >= 2 and raw[:2].isalpha():
        prefix = raw[:2]
        raw = raw[2:]
        if prefix not in DATE_PREFIXES:
            raise _bad(name, "unknown date prefix")
    try:
        low, high = fhir_range(raw)
    except ValueError:
        raise _bad(name, "not a FHIR date") from None
    if prefix == "ap":
        # 'Approximately': widen by 10% of the distance to now, at least one day (FHIR leaves the
        # width to the server).
        now = int(time.time() * 1_000_000)
        slack = max(abs(now - low) // 10, 86_400_000_000)
        low, high = low - slack, high + slack
    return DateValue(prefix=prefix, low=low, high=high)


def _parse_reference(name: str, raw: str, param: SearchParam, type_modifier: str | None) -> ReferenceValue:
    if not raw:
        raise _bad(name, "empty reference")
    parsed = parse_reference(raw) if "/" in raw else None
    if parsed is not None:
        target_type, target_id = parsed
        if type_modifier and target_type != type_modifier:
            raise _bad(name, "reference type does not match the modifier")
        return ReferenceValue(target_type=target_type, target_id=target_id)
    if "/" in raw:
        raise _bad(name, "not a reference")
    implied_type = type_modifier or (param.targets[0] if len(param.targets) == 1 else None)
    return ReferenceValue(target_type=implied_type, target_id=raw)


_MODIFIERS: dict[str, frozenset[str]] = {
    "token": frozenset({"not", "missing"}),
    "string": frozenset({"exact", "contains", "missing"}),
    "date": frozenset({"missing"}),
    "reference": frozenset({"missing"}),
}
_KNOWN_MODIFIERS: frozenset[str] = frozenset().union(*_MODIFIERS.values())


def _parse_criterion(resource_type: str, name: str, raw: str) -> Criterion | None:
    base, _, modifier = name.partition(":")
    modifier_or_none = modifier or None
    kind: ParamKind
    param: SearchParam | None = None
    if base in _SPECIAL_PARAMS:
        kind = "token" if base == "_id" else "date"
    else:
        param = search_param(resource_type, base)
        if param is None:
            return None
        base = param.name  # an alias searches its canonical parameter's index rows
        kind = param.type
    type_modifier: str | None = None
    if modifier_or_none and modifier_or_none not in _MODIFIERS[kind]:
        if kind == "reference" and param is not None and (not param.targets or modifier_or_none in param.targets):
            type_modifier = modifier_or_none
            modifier_or_none = None
        else:
            raise _bad(name, "unsupported modifier")
    if modifier_or_none == "missing":
        if raw not in ("true", "false"):
            raise _bad(name, ":missing takes true or false")
        return Criterion(base, kind, "missing", (MissingValue(raw == "true"),))
    values: list[SearchValue] = []
    for part in _split_values(raw):
        if kind == "token":
            values.append(_parse_token(name, part))
        elif kind == "date":
            values.append(_parse_date(name, part))
        elif kind == "string":
            if not part:
                raise _bad(name, "empty string")
            values.append(StringValue(part if modifier_or_none == "exact" else normalize_string(part)))
        else:
            assert param is not None
            values.append(_parse_reference(name, part, param, type_modifier))
    return Criterion(base, kind, modifier_or_none, tuple(values))


def _parse_int(name: str, raw: str, *, minimum: int) -> int:
    if not raw.isdigit():
        raise _bad(name, "not a non-negative integer")
    value = int(raw)
    if value < minimum:
        raise _bad(name, "too small")
    return value


def _parse_sort(resource_type: str, raw: str) -> tuple[SortKey, ...]:
    keys: list[SortKey] = []
    for part in raw.split(","):
        descending = part.startswith("-")
        name = part[1:] if descending else part
        if name in ("_id", "_lastUpdated"):
            keys.append(SortKey(name, name, descending))  # type: ignore[arg-type]
            continue
        param = search_param(resource_type, name)
        if param is None or param.type == "reference":
            raise _bad("_sort", "unsupported sort parameter")
        keys.append(SortKey(param.name, param.type, descending))
    return tuple(keys)


def _parse_include(name: str, raw: str, resource_type: str, *, reverse: bool) -> Include:
    parts = raw.split(":")
    if len(parts) not in (2, 3) or not all(parts):
        raise _bad(name, "expected Type:param[:Target]")
    source_type, param_name = parts[0], parts[1]
    target_type = parts[2] if len(parts) == 3 else None
    if not reverse and source_type != resource_type:
        raise _bad(name, "source type must be the searched type")
    param = search_param(source_type, param_name)
    if param is None or param.type != "reference":
        raise _bad(name, "not a reference parameter")
    if reverse and param.targets and resource_type not in param.targets:
        raise _bad(name, "parameter cannot refer to the searched type")
    if target_type is not None and param.targets and target_type not in param.targets:
        raise _bad(name, "target type not allowed for this parameter")
    return Include(source_type, param_name, target_type)


def parse_search(
    resource_type: str,
    params: Sequence[tuple[str, str]],
    *,
    default_count: int,
    max_count: int,
) -> SearchQuery:
    """Parse request parameters for a search on ``resource_type``; raises InputError(INVALID_SEARCH)."""
    criteria: list[Criterion] = []
    used: list[tuple[str, str]] = []
    count, offset, with_total = default_count, 0, True
    sort: tuple[SortKey, ...] = ()
    includes: list[Include] = []
    revincludes: list[Include] = []
    for name, raw in params:
        if name == "_count":
            count = min(_parse_int(name, raw, minimum=0), max_count)
        elif name == "_page":
            offset = decode_page_token(raw, params)
            continue
        elif name == "_sort":
            sort = _parse_sort(resource_type, raw)
        elif name in ("_include", "_revinclude"):
            includes_list = revincludes if name == "_revinclude" else includes
            includes_list.append(_parse_include(name, raw, resource_type, reverse=name == "_revinclude"))
        elif name.startswith(("_include:", "_revinclude:")):
            raise _bad(name, "iterate is not supported")
        elif name == "_total":
            if raw not in ("none", "estimate", "accurate"):
                raise _bad(name, "expected none, estimate or accurate")
            with_total = raw != "none"
        elif name in IGNORED_RESULT_PARAMS:
            continue
        else:
            criterion = _parse_criterion(resource_type, name, raw)
            if criterion is None:
                continue
            criteria.append(criterion)
        used.append((name, raw))
    return SearchQuery(
        resource_type=resource_type,
        criteria=tuple(criteria),
        count=count,
        offset=offset,
        sort=sort,
        includes=tuple(includes),
        revincludes=tuple(revincludes),
        with_total=with_total or count == 0,
        used_params=tuple(used),
    )


def _params_digest(params: Sequence[tuple[str, str]]) -> str:
    kept = [(n, v) for n, v in params if n != "_page"]
    return hashlib.sha256(orjson.dumps(kept)).hexdigest()[:16]


def encode_page_token(offset: int, params: Sequence[tuple[str, str]]) -> str:
    """An opaque page token: the offset, bound to the exact search it continues."""
    payload = orjson.dumps({"o": offset, "q": _params_digest(params)})
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_page_token(token: str, params: Sequence[tuple[str, str]]) -> int:
    """The offset in a page token; rejects tokens from another search or that were altered."""
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = payload["o"]
        digest = payload["q"]
    except (binascii.Error, ValueError, TypeError, KeyError):
        raise _bad("_page", "not a page token of this server") from None
    if not isinstance(offset, int) or offset < 0 or digest != _params_digest(params):
        raise _bad("_page", "not a page token of this search")
    return offset
