"""FHIR search in SQL: a parsed :class:`~node.fhir.query.SearchQuery` becomes one id query.

Plan: one criterion *drives* (its index rows are scanned), every other criterion is a correlated
``EXISTS`` probe on the driver's resource id, served by the ``*_owner`` indexes. The driver is the
most selective kind we can tell without statistics: ``_id``, then references (a patient's rows), then
tokens, strings and dates. A date criterion on the type's primary date parameter is folded into a
token driver (token rows carry that range), so *code within a window* reads one covering index.

Deleted resources have no index rows, so only the resource-table paths check ``deleted``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import FromClause, Select

from node.fhir.query import (
    Criterion,
    DateValue,
    Include,
    MissingValue,
    ReferenceValue,
    SearchQuery,
    SortKey,
    StringValue,
    TokenValue,
)
from node.fhir.search_params import PRIMARY_DATE_PARAM
from node.store.models import Resource, SearchDate, SearchReference, SearchString, SearchToken

__all__ = ["count_matches", "find_ids", "include_targets", "revinclude_sources"]

RESOURCE = Resource.__table__  # type: ignore[attr-defined]
TOKEN = SearchToken.__table__  # type: ignore[attr-defined]
STRING = SearchString.__table__  # type: ignore[attr-defined]
DATE = SearchDate.__table__  # type: ignore[attr-defined]
REFERENCE = SearchReference.__table__  # type: ignore[attr-defined]

_TABLE_OF_KIND = {"token": TOKEN, "string": STRING, "date": DATE, "reference": REFERENCE}
_DRIVER_RANK = {"reference": 0, "token": 1, "string": 2, "date": 3}
_STRING_END = "\U0010ffff"


def _date_predicate(low: sa.ColumnElement[int], high: sa.ColumnElement[int], v: DateValue) -> ColumnElement[bool]:
    """FHIR R4 date prefix semantics, target range [low, high) against search range [v.low, v.high).

    Where a bound on ``high`` follows from the others (a range is never empty: high > low), it is
    spelled out, so an index ordered by ``high`` can seek to it.
    """
    match v.prefix:
        case "eq":
            return sa.and_(low >= v.low, high <= v.high, high > v.low)
        case "ne":
            return sa.not_(sa.and_(low >= v.low, high <= v.high))
        case "gt":
            return high > v.high
        case "lt":
            return low < v.low
        case "ge":
            return high > v.low
        case "le":
            return low < v.high
        case "sa":
            return sa.and_(low >= v.high, high > v.high)
        case "eb":
            return high <= v.low
        case _:  # "ap": overlap with the widened range
            return sa.and_(low < v.high, high > v.low)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _value_predicate(table: FromClause, kind: str, modifier: str | None, value: object) -> ColumnElement[bool]:
    c = table.c
    if isinstance(value, TokenValue):
        parts: list[ColumnElement[bool]] = []
        if value.code is not None:
            parts.append(c.code == value.code)
        if value.system is not None:
            parts.append(c.system == value.system)
        return sa.and_(*parts)
    if isinstance(value, StringValue):
        if modifier == "exact":
            return c.value_exact == value.value
        if modifier == "contains":
            return c.value_norm.like(f"%{_escape_like(value.value)}%", escape="\\")
        return sa.and_(c.value_norm >= value.value, c.value_norm < value.value + _STRING_END)
    if isinstance(value, DateValue):
        return _date_predicate(c.low, c.high, value)
    assert isinstance(value, ReferenceValue), kind
    if value.target_type is None:
        return c.target_id == value.target_id
    return sa.and_(c.target_type == value.target_type, c.target_id == value.target_id)


def _rows_predicate(table: FromClause, crit: Criterion) -> ColumnElement[bool]:
    values = [_value_predicate(table, crit.kind, crit.modifier, v) for v in crit.values]
    return sa.and_(table.c.param == crit.name, sa.or_(*values))


def _exists(resource_type: str, resource_id: sa.ColumnElement[str], crit: Criterion) -> ColumnElement[bool]:
    """True for resources that satisfy ``crit``, correlated on ``resource_id``."""
    if crit.name == "_lastUpdated":
        r = RESOURCE.alias()
        preds = [_date_predicate(r.c.last_updated, r.c.last_updated + 1, v) for v in crit.values]  # type: ignore[arg-type]
        return sa.exists().where(r.c.resource_type == resource_type, r.c.id == resource_id, sa.or_(*preds))
    if crit.name == "_id":
        ids = [v.code for v in crit.values if isinstance(v, TokenValue)]
        return resource_id.in_(ids)
    table = _TABLE_OF_KIND[crit.kind].alias()
    owner = sa.and_(table.c.resource_type == resource_type, table.c.resource_id == resource_id)
    if crit.modifier == "missing":
        (value,) = crit.values
        assert isinstance(value, MissingValue)
        present = sa.exists().where(owner, table.c.param == crit.name)
        return sa.not_(present) if value.missing else present
    if crit.modifier == "not":
        # :not matches resources with no value equal to any given one (including no value at all).
        not_crit = Criterion(crit.name, crit.kind, None, crit.values)
        return sa.not_(sa.exists().where(owner, _rows_predicate(table, not_crit)))
    return sa.exists().where(owner, _rows_predicate(table, crit))


def _can_drive(crit: Criterion) -> bool:
    return crit.modifier not in ("missing", "not") and crit.name != "_lastUpdated"


def _foldable_date(query: SearchQuery, crit: Criterion) -> bool:
    return crit.kind == "date" and crit.modifier is None and crit.name == PRIMARY_DATE_PARAM.get(query.resource_type)


def _one_row_per_resource(crit: Criterion) -> bool:
    """True when at most one index row of a resource can match: then no DISTINCT (and no sort) is needed.

    Index keys are (resource, param, value...), so one fully specified value matches one row at most.
    """
    if len(crit.values) != 1:
        return False
    (value,) = crit.values
    if isinstance(value, TokenValue):
        return value.system is not None and value.code is not None
    if isinstance(value, ReferenceValue):
        return value.target_type is not None
    return False


@dataclass(frozen=True, slots=True)
class _Plan:
    """The id query, and the order in which its driving index already yields the ids (if unique)."""

    ids: Select[Any]
    index_order: tuple[sa.ColumnElement[Any], ...] | None


def _matching_ids(query: SearchQuery) -> Select[Any]:
    """SELECT (DISTINCT) resource_id of every current resource matching all criteria."""
    return _plan(query).ids


def _plan(query: SearchQuery) -> _Plan:
    t = query.resource_type
    criteria = list(query.criteria)
    id_crit = next((c for c in criteria if c.name == "_id" and _can_drive(c)), None)
    drivers = sorted(
        (c for c in criteria if c.name != "_id" and _can_drive(c)),
        key=lambda c: _DRIVER_RANK[c.kind],
    )
    index_order: tuple[sa.ColumnElement[Any], ...] | None = None
    if id_crit is not None or not drivers:
        r = RESOURCE.alias("r")
        stmt = sa.select(r.c.id.label("resource_id")).where(r.c.resource_type == t, r.c.deleted == sa.false())
        rest = criteria
        resource_id = r.c.id
    else:
        driver = drivers[0]
        d = _TABLE_OF_KIND[driver.kind].alias("d")
        stmt = sa.select(d.c.resource_id).where(d.c.resource_type == t, _rows_predicate(d, driver))
        if not _one_row_per_resource(driver):
            stmt = stmt.distinct()
        rest = [c for c in criteria if c is not driver]
        resource_id = d.c.resource_id
        if driver.kind == "token":
            folded = [c for c in rest if _foldable_date(query, c)]
            for crit in folded:
                preds = [
                    _date_predicate(d.c.date_low, d.c.date_high, v) for v in crit.values if isinstance(v, DateValue)
                ]
                stmt = stmt.where(sa.or_(*preds))
            rest = [c for c in rest if c not in folded]
            if _one_row_per_resource(driver):
                # ix_search_token_lookup read backwards: newest primary date first, no sort step,
                # so a page costs its own rows however many resources match.
                index_order = (
                    d.c.date_high.desc(),
                    d.c.date_low.desc(),
                    d.c.system.desc(),
                    d.c.resource_id.desc(),
                )
    for crit in rest:
        stmt = stmt.where(_exists(t, resource_id, crit))
    return _Plan(stmt, index_order)


def count_matches(conn: Connection, query: SearchQuery) -> int:
    """The number of resources matching ``query`` (FHIR ``Bundle.total``)."""
    ids = _matching_ids(query).subquery()
    return int(conn.execute(sa.select(sa.func.count()).select_from(ids)).scalar_one())


def _sort_expression(resource_type: str, resource_id: sa.ColumnElement[str], key: SortKey) -> sa.ColumnElement[Any]:
    if key.kind in ("_id", "_lastUpdated"):
        if key.kind == "_id":
            return resource_id
        r = RESOURCE.alias()
        return (
            sa.select(r.c.last_updated)
            .where(r.c.resource_type == resource_type, r.c.id == resource_id)
            .scalar_subquery()
        )
    table = _TABLE_OF_KIND[key.kind].alias()
    if key.kind == "date":
        column = table.c.high if key.descending else table.c.low
    else:
        column = table.c.value_norm if key.kind == "string" else table.c.code
    aggregate = sa.func.max(column) if key.descending else sa.func.min(column)
    return (
        sa.select(aggregate)
        .where(
            table.c.resource_type == resource_type,
            table.c.resource_id == resource_id,
            table.c.param == key.name,
        )
        .scalar_subquery()
    )


def find_ids(conn: Connection, query: SearchQuery) -> list[str]:
    """The ids on the requested page, in the requested order.

    Without ``_sort``: a search driven by one fully specified code returns the newest resources first
    (by primary date, in index order); any other search orders by id. Ties under ``_sort`` go by id.
    """
    if query.count == 0:
        return []
    plan = _plan(query)
    if not query.sort and plan.index_order is not None:
        page = plan.ids.order_by(*plan.index_order).limit(query.count).offset(query.offset)
        return [row[0] for row in conn.execute(page)]
    ids = plan.ids.subquery("ids")
    order: list[sa.ColumnElement[Any]] = []
    for key in query.sort:
        expr = _sort_expression(query.resource_type, ids.c.resource_id, key)
        order.append(sa.case((expr.is_(None), 1), else_=0))  # missing values last
        order.append(expr.desc() if key.descending else expr.asc())
    order.append(ids.c.resource_id)
    stmt = sa.select(ids.c.resource_id).order_by(*order).limit(query.count).offset(query.offset)
    return [row[0] for row in conn.execute(stmt)]


def include_targets(
    conn: Connection, resource_type: str, ids: Sequence[str], include: Include
) -> list[tuple[str, str]]:
    """(type, id) of resources that the given resources refer to through ``include.param``."""
    if not ids:
        return []
    ref = REFERENCE
    stmt = sa.select(ref.c.target_type, ref.c.target_id).where(
        ref.c.resource_type == resource_type,
        ref.c.resource_id.in_(ids),
        ref.c.param == include.param,
    )
    if include.target_type:
        stmt = stmt.where(ref.c.target_type == include.target_type)
    return sorted({(row[0], row[1]) for row in conn.execute(stmt)})


def revinclude_sources(
    conn: Connection, resource_type: str, ids: Sequence[str], include: Include
) -> list[tuple[str, str]]:
    """(type, id) of ``include.source_type`` resources that refer to the given resources."""
    if not ids:
        return []
    ref = REFERENCE
    stmt = sa.select(ref.c.resource_type, ref.c.resource_id).where(
        ref.c.target_type == resource_type,
        ref.c.target_id.in_(ids),
        ref.c.resource_type == include.source_type,
        ref.c.param == include.param,
    )
    return sorted({(row[0], row[1]) for row in conn.execute(stmt)})


def compartment_ids(conn: Connection, target_type: str, target_id: str) -> list[tuple[str, str]]:
    """(type, id) of every current resource that refers to ``target_type/target_id``, by any parameter."""
    ref = REFERENCE
    stmt = (
        sa.select(ref.c.resource_type, ref.c.resource_id)
        .where(ref.c.target_type == target_type, ref.c.target_id == target_id)
        .distinct()
    )
    return sorted((row[0], row[1]) for row in conn.execute(stmt))
