"""What a resource contributes to the search index: tokens, strings, dates and references.

:func:`extract_index` runs for every resource at ingest, so the work that does not depend on the
resource is done once, at import: each resource type's search parameters (from
:mod:`node.fhir.search_params`) are compiled into a plan, per parameter a value kind and its key
paths, with choice elements (``effective[x]``) expanded to the concrete keys the parameter type can
use (``effectiveDateTime``, ``effectivePeriod``, ...). Extraction is then one loop of dict lookups
over the plan, and recent dates and references are memoised.

Values are read by JSON shape, defensively: a value of an unexpected JSON type is skipped, never an
error (ingest validation runs earlier; extraction must not fail on what validation let through).

* token: CodeableConcept -> each coding's (system, code); Coding -> (system, code); Identifier ->
  (system, value); ContactPoint -> ("", value); code/string/uri -> ("", value); boolean ->
  ("", "true"|"false"). A missing system is "".
* string: a plain string, or every string part of a HumanName or Address; stored as
  (param, normalize_string(value), value).
* date: date/dateTime/instant -> :func:`~node.fhir.dates.fhir_range`; Period ->
  :func:`~node.fhir.dates.period_range`; unparseable values are skipped.
* reference: ``Reference.reference`` parsed by :func:`parse_reference`, kept only if its type is
  one of the parameter's targets (when it has any).
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from node.fhir.dates import fhir_range, period_range
from node.fhir.search_params import PRIMARY_DATE_PARAM, SEARCH_PARAMS, SearchParam

__all__ = ["IndexEntries", "extract_index", "normalize_string", "parse_reference"]


@dataclass(slots=True)
class IndexEntries:
    """The index rows of one resource; each list is free of duplicates, in extraction order."""

    tokens: list[tuple[str, str, str]]  # (param, system or "", code)
    strings: list[tuple[str, str, str]]  # (param, normalized value, exact value)
    dates: list[tuple[str, int, int]]  # (param, low, high): half-open, epoch microseconds UTC
    references: list[tuple[str, str, str]]  # (param, target type, target id)
    primary_date: tuple[int, int] | None  # range of the first value of PRIMARY_DATE_PARAM


def normalize_string(value: str) -> str:
    """The form string search compares: accents and case folded, whitespace collapsed.

    NFKD, combining marks dropped, casefolded, runs of whitespace made one space, ends stripped:
    ``"  José  María "`` -> ``"jose maria"``, ``"Müller"`` -> ``"muller"``, ``"Straße"`` ->
    ``"strasse"``. Used for indexed values and for search values alike.
    """
    if value.isascii():
        return " ".join(value.lower().split())
    # Casefolding can produce new decomposable characters, so decompose again after it.
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKD", value).casefold())
    return " ".join("".join(c for c in folded if not unicodedata.combining(c)).split())


# A relative reference Type/id, optionally versioned, optionally behind an http(s) base URL.
# FHIR ids are [A-Za-z0-9\-.]{1,64}; resource type names are letters starting with a capital.
_REFERENCE = re.compile(
    r"(?:https?://[^/?#\s]+(?:/[^/?#\s]+)*?/)?"
    r"([A-Z][A-Za-z]{0,63})/([A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?"
).fullmatch

# Recently parsed references (the same patient and encounter recur across a bundle); bounded,
# cleared when full, valid references of modest length only.
_REFERENCE_MEMO_SIZE = 16_384
_REFERENCE_MEMO_MAX_KEY = 256
_reference_memo: dict[str, tuple[str, str]] = {}


def parse_reference(reference: str) -> tuple[str, str] | None:
    """``(type, id)`` of a literal reference, or None if it does not name a resource by type and id.

    Accepts ``Patient/123``, ``Patient/123/_history/2`` and ``http(s)://host/base/Patient/123``
    (also versioned). Contained (``#c``), ``urn:uuid:``/``urn:oid:``, conditional (``Patient?…``)
    and malformed references give None.
    """
    cached = _reference_memo.get(reference)
    if cached is not None:
        return cached
    match = _REFERENCE(reference)
    if match is None:
        return None
    parsed = (match[1], match[2])
    if len(reference) <= _REFERENCE_MEMO_MAX_KEY:
        if len(_reference_memo) >= _REFERENCE_MEMO_SIZE:
            _reference_memo.clear()
        _reference_memo[reference] = parsed
    return parsed


# Plan kinds.
_TOKEN = 0  # CodeableConcept, Coding, code/string/uri, boolean
_IDENTIFIER = 1  # Identifier
_CONTACT = 2  # ContactPoint, optionally only one ContactPoint.system
_DECEASED = 3  # Patient.deceased.exists() and Patient.deceased != false
_STRING = 4
_DATE = 5
_REFERENCE_KIND = 6

# The choice types ([x] suffixes) each parameter type reads; others (onsetAge, valueQuantity,
# occurrenceString, ...) cannot hold a value of that kind and are not looked at.
_CHOICE_TYPES: dict[str, tuple[str, ...]] = {
    "token": ("CodeableConcept", "Coding", "Code", "Boolean", "String", "Uri"),
    "string": ("String",),
    "date": ("DateTime", "Date", "Instant", "Period"),
    "reference": ("Reference",),
}
# Token parameters over ContactPoint that R4 restricts to one ContactPoint.system.
_CONTACT_SYSTEM = {"phone": "phone", "email": "email"}
# The string parts of HumanName (family, given, prefix, suffix, text) and Address (line, city,
# district, state, postalCode, country, text): a string parameter on either indexes each of them.
_STRING_PARTS = (
    "family",
    "given",
    "prefix",
    "suffix",
    "line",
    "city",
    "district",
    "state",
    "postalCode",
    "country",
    "text",
)


class _ParamPlan(NamedTuple):
    name: str
    kind: int
    keys: tuple[tuple[str, tuple[str, ...]], ...]  # (key on the resource, keys below it) per path
    targets: frozenset[str]  # reference: allowed target types (empty: any)
    system: str | None  # contact: the only ContactPoint.system indexed


class _Plan(NamedTuple):
    params: tuple[_ParamPlan, ...]
    primary: str | None  # PRIMARY_DATE_PARAM of the type


def _kind(param: SearchParam) -> int:
    if param.type == "token":
        last_keys = {path.rsplit(".", 1)[-1] for path in param.paths}
        if param.name == "deceased":
            return _DECEASED
        if last_keys <= {"identifier", "masterIdentifier"}:
            return _IDENTIFIER
        if last_keys == {"telecom"}:
            return _CONTACT
        return _TOKEN
    return {"string": _STRING, "date": _DATE, "reference": _REFERENCE_KIND}[param.type]


def _compile(params: tuple[SearchParam, ...], primary: str | None) -> _Plan:
    compiled: list[_ParamPlan] = []
    for param in params:
        keys: list[tuple[str, tuple[str, ...]]] = []
        for path in param.paths:
            options = [
                [key[:-3] + suffix for suffix in _CHOICE_TYPES[param.type]] if key.endswith("[x]") else [key]
                for key in path.split(".")
            ]
            keys.extend((chain[0], tuple(chain[1:])) for chain in itertools.product(*options))
        targets = frozenset(param.targets)
        compiled.append(_ParamPlan(param.name, _kind(param), tuple(keys), targets, _CONTACT_SYSTEM.get(param.name)))
    return _Plan(tuple(compiled), primary)


_PLANS: dict[str, _Plan] = {
    resource_type: _compile(tuple(params.values()), PRIMARY_DATE_PARAM.get(resource_type))
    for resource_type, params in SEARCH_PARAMS.items()
}


def _descend(node: object, keys: tuple[str, ...]) -> list[Any]:
    """The values at ``keys`` below ``node``, through every list on the way."""
    current: list[Any] = node if isinstance(node, list) else [node]
    for key in keys:
        found: list[Any] = []
        for item in current:
            if isinstance(item, dict):
                child = item.get(key)
                if child is None:
                    continue
                if isinstance(child, list):
                    found.extend(child)
                else:
                    found.append(child)
        current = found
        if not current:
            break
    return current


def _add_string(strings: list[tuple[str, str, str]], param: str, value: str) -> None:
    normalized = normalize_string(value)
    if normalized:
        strings.append((param, normalized, value))


def extract_index(resource: dict[str, Any], urns: Mapping[str, str] | None = None) -> IndexEntries:
    """The index entries of ``resource`` for its type's search parameters; never raises.

    A resource of a type without search parameters, or not a dict, gives empty entries. ``urns`` maps
    a Bundle's ``urn:uuid:`` fullUrls to ``Type/id``, for resources whose references are rewritten in
    their serialised form only (see :mod:`node.fhir.bundles`).
    """
    tokens: list[tuple[str, str, str]] = []
    strings: list[tuple[str, str, str]] = []
    dates: list[tuple[str, int, int]] = []
    references: list[tuple[str, str, str]] = []
    primary_date: tuple[int, int] | None = None
    resource_type = resource.get("resourceType") if isinstance(resource, dict) else None
    plan = _PLANS.get(resource_type) if isinstance(resource_type, str) else None
    if plan is None:
        return IndexEntries(tokens, strings, dates, references, None)
    primary = plan.primary
    for param, kind, keys, targets, system in plan.params:
        if kind == _DECEASED:
            flag = resource.get("deceasedBoolean")
            when = resource.get("deceasedDateTime")
            deceased = flag is True or (isinstance(when, str) and bool(when))
            tokens.append((param, "", "true" if deceased else "false"))
            continue
        # The values of every path of the parameter, lists flattened.
        values: list[Any] | tuple[Any, ...] = ()
        for first, rest in keys:
            node = resource.get(first)
            if node is None:
                continue
            if rest:
                node = _descend(node, rest)
            elif not isinstance(node, list):
                node = (node,)
            values = node if not values else [*values, *node]
        if not values:
            continue
        if kind == _REFERENCE_KIND:
            out: list[Any] = references
            mark = len(out)
            for value in values:
                if isinstance(value, dict):
                    reference = value.get("reference")
                    if isinstance(reference, str):
                        if urns is not None and reference.startswith("urn:"):
                            reference = urns.get(reference, reference)
                        parsed = parse_reference(reference)
                        if parsed is not None and (not targets or parsed[0] in targets):
                            references.append((param, parsed[0], parsed[1]))
        elif kind == _TOKEN:
            out = tokens
            mark = len(out)
            for value in values:
                if isinstance(value, dict):
                    codings = value.get("coding")
                    if codings is None:  # a Coding
                        code = value.get("code")
                        if isinstance(code, str) and code:
                            coding_system = value.get("system")
                            tokens.append((param, coding_system if isinstance(coding_system, str) else "", code))
                    elif isinstance(codings, list):  # a CodeableConcept
                        for coding in codings:
                            if isinstance(coding, dict):
                                code = coding.get("code")
                                if isinstance(code, str) and code:
                                    coding_system = coding.get("system")
                                    tokens.append(
                                        (param, coding_system if isinstance(coding_system, str) else "", code)
                                    )
                elif isinstance(value, str):
                    if value:
                        tokens.append((param, "", value))
                elif value is True or value is False:
                    tokens.append((param, "", "true" if value else "false"))
        elif kind == _DATE:
            out = dates
            mark = len(out)
            for value in values:
                try:
                    if isinstance(value, str):
                        low, high = fhir_range(value)
                    elif isinstance(value, dict):
                        start = value.get("start")
                        end = value.get("end")
                        if (start is None and end is None) or not (
                            (start is None or isinstance(start, str)) and (end is None or isinstance(end, str))
                        ):
                            continue
                        low, high = period_range(start, end)
                    else:
                        continue
                except ValueError:
                    continue
                if primary_date is None and param == primary:
                    primary_date = (low, high)
                dates.append((param, low, high))
        elif kind == _STRING:
            out = strings
            mark = len(out)
            for value in values:
                if isinstance(value, str):
                    _add_string(strings, param, value)
                elif isinstance(value, dict):
                    for part_key in _STRING_PARTS:
                        part = value.get(part_key)
                        if isinstance(part, str):
                            _add_string(strings, param, part)
                        elif isinstance(part, list):
                            for item in part:
                                if isinstance(item, str):
                                    _add_string(strings, param, item)
        elif kind == _IDENTIFIER:
            out = tokens
            mark = len(out)
            for value in values:
                if isinstance(value, dict):
                    identifier = value.get("value")
                    if isinstance(identifier, str) and identifier:
                        identifier_system = value.get("system")
                        tokens.append(
                            (
                                param,
                                identifier_system if isinstance(identifier_system, str) else "",
                                identifier,
                            )
                        )
        else:  # _CONTACT
            out = tokens
            mark = len(out)
            for value in values:
                if isinstance(value, dict) and (system is None or value.get("system") == system):
                    contact = value.get("value")
                    if isinstance(contact, str) and contact:
                        tokens.append((param, "", contact))
        # Entries of different parameters differ in their first field, so duplicates can only be
        # among the entries this parameter just added.
        if len(out) - mark > 1:
            out[mark:] = dict.fromkeys(out[mark:])
    return IndexEntries(tokens, strings, dates, references, primary_date)
