"""FHIR R4 REST routes under /fhir (the hospital's own users; bearer token required except /metadata).

Role ``clinician`` reads and searches; role ``admin`` also writes. Every call with a token is
audited by :mod:`node.api.audit_middleware` from what these routes leave on ``request.state``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from common.errors import ErrorCode, InputError
from node.api.deps import Admin, Reader, ServiceDep, SettingsDep
from node.api.errors import FHIR_JSON
from node.api.fhir_io import base_url, bundle_response, media_type, read_body, read_json_body, resource_response
from node.fhir.bundles import process_bundle
from node.fhir.capability import capability_statement
from node.fhir.service import FhirService, check_type

__all__ = ["router"]

router = APIRouter(prefix="/fhir")
VERSION = "0.1.0"

# The write routes read their JSON themselves (FHIR validation is stricter than a schema can say);
# the OpenAPI document still says what they take, so clients and fuzzers send a body.
_JSON_OBJECT = {"schema": {"type": "object"}}
_RESOURCE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/fhir+json": _JSON_OBJECT, "application/json": _JSON_OBJECT},
    }
}
# Search parameters are read from the query string as FHIR defines them (any resource's parameters);
# these common ones are declared so that the document shows how a search looks.
_SEARCH_PARAMETERS = ("_id", "_count", "_sort", "_include", "_revinclude", "_total", "_lastUpdated", "identifier")
_SEARCH_QUERY: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in _SEARCH_PARAMETERS
    ]
}
_PAGE_QUERY: dict[str, Any] = {
    "parameters": [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in ("_count", "_page")
    ]
}
_SEARCH_FORM: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}}},
    }
}


def _params(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _search_response(
    request: Request, service: FhirService, resource_type: str, params: list[tuple[str, str]]
) -> Response:
    query = service.parse(resource_type, params)
    result = service.search(query)
    request.state.result_count = len(result.matches) + len(result.included)
    return bundle_response(request, result, path=resource_type, params=query.used_params, count=query.count)


def _search_bundle(service: FhirService, request: Request) -> Any:
    """A search callback for GET entries inside a batch/transaction Bundle."""

    def run(resource_type: str, params: list[tuple[str, str]]) -> Any:
        response = _search_response(request, service, resource_type, params)
        return orjson.loads(bytes(response.body))

    return run


@router.get("/metadata", name="fhir.capabilities")
def metadata(request: Request) -> Response:
    """The CapabilityStatement (public, as FHIR clients need it before they authenticate)."""
    body = orjson.dumps(capability_statement(base_url(request), VERSION))
    return Response(body, media_type=FHIR_JSON)


@router.post("", name="fhir.bundle", openapi_extra=_RESOURCE_BODY)
async def post_bundle(request: Request, service: ServiceDep, settings: SettingsDep, _: Admin) -> Response:
    """A transaction or batch Bundle."""
    bundle = await read_json_body(request)
    outcome = await run_in_threadpool(
        process_bundle,
        service,
        bundle,
        max_entries=settings.max_bundle_entries,
        search_page=_search_bundle(service, request),
    )
    request.state.result_count = len(outcome.written)
    return Response(orjson.dumps(outcome.response), media_type=FHIR_JSON)


@router.get("/Patient/{resource_id}/$everything", name="fhir.everything", openapi_extra=_PAGE_QUERY)
def everything(request: Request, resource_id: str, service: ServiceDep, _: Reader) -> Response:
    """The patient and every resource that refers to them, paged."""
    params = _params(request)
    query = service.parse("Patient", [(n, v) for n, v in params if n in ("_count", "_page")])
    result = service.everything(resource_id, count=query.count, offset=query.offset)
    request.state.result_count = len(result.matches)
    return bundle_response(
        request,
        result,
        path=f"Patient/{resource_id}/$everything",
        params=[(n, v) for n, v in params if n == "_count"],
        count=query.count,
    )


@router.get("/{resource_type}", name="fhir.search", openapi_extra=_SEARCH_QUERY)
def search(request: Request, resource_type: str, service: ServiceDep, _: Reader) -> Response:
    """Search by GET."""
    return _search_response(request, service, resource_type, _params(request))


@router.post("/{resource_type}/_search", name="fhir.search_post", openapi_extra=_SEARCH_FORM)
async def search_post(request: Request, resource_type: str, service: ServiceDep, _: Reader) -> Response:
    """Search by POST with a form body (keeps identifiers out of URLs and proxy logs)."""
    if media_type(request, "") not in ("application/x-www-form-urlencoded", ""):
        raise InputError(ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    body = (await read_body(request)).decode("utf-8", errors="replace")
    params = _params(request) + parse_qsl(body, keep_blank_values=True)
    return await run_in_threadpool(_search_response, request, service, resource_type, params)


@router.post("/{resource_type}", name="fhir.create", openapi_extra=_RESOURCE_BODY)
async def create(request: Request, resource_type: str, service: ServiceDep, _: Admin) -> Response:
    """Create; conditional by ``If-None-Exist`` or by search parameters in the URL."""
    check_type(resource_type)
    resource = await read_json_body(request)
    if not isinstance(resource, dict):
        raise InputError(ErrorCode.INVALID_RESOURCE, hints=["body: not a JSON object"])
    if resource.get("resourceType") != resource_type:
        raise InputError(ErrorCode.INVALID_REQUEST, hints=["resourceType: does not match the URL"])
    condition: list[tuple[str, str]] | None = None
    header = request.headers.get("if-none-exist")
    if header:
        condition = parse_qsl(header.split("?", 1)[-1], keep_blank_values=True)
    elif request.query_params:
        condition = _params(request)
    result = await run_in_threadpool(service.create, resource, if_none_exist=condition)
    request.state.resource_id = result.stored.id
    return resource_response(request, result.stored, status=201 if result.created else 200)


@router.get("/{resource_type}/{resource_id}", name="fhir.read")
def read(request: Request, resource_type: str, resource_id: str, service: ServiceDep, _: Reader) -> Response:
    """Read the current version."""
    return resource_response(request, service.read(resource_type, resource_id))


@router.get("/{resource_type}/{resource_id}/_history/{version_id}", name="fhir.vread")
def vread(
    request: Request, resource_type: str, resource_id: str, version_id: str, service: ServiceDep, _: Reader
) -> Response:
    """Read one version."""
    return resource_response(request, service.vread(resource_type, resource_id, version_id))


@router.get("/{resource_type}/{resource_id}/_history", name="fhir.history")
def history(request: Request, resource_type: str, resource_id: str, service: ServiceDep, _: Reader) -> Response:
    """Every version of one resource, newest first (deletions as entries without a resource)."""
    base = base_url(request)
    entries: list[dict[str, Any]] = []
    for version in service.history(resource_type, resource_id):
        entry: dict[str, Any] = {
            "fullUrl": f"{base}/{resource_type}/{resource_id}",
            "request": {
                "method": "DELETE" if version.deleted else "PUT",
                "url": f"{resource_type}/{resource_id}",
            },
            "response": {"status": "204" if version.deleted else "200", "etag": f'W/"{version.version_id}"'},
        }
        if not version.deleted:
            entry["resource"] = orjson.loads(version.content)
        entries.append(entry)
    request.state.result_count = len(entries)
    body = {"resourceType": "Bundle", "type": "history", "total": len(entries), "entry": entries}
    return Response(orjson.dumps(body), media_type=FHIR_JSON)


@router.put("/{resource_type}/{resource_id}", name="fhir.update", openapi_extra=_RESOURCE_BODY)
async def update(request: Request, resource_type: str, resource_id: str, service: ServiceDep, _: Admin) -> Response:
    """Update (or create with this id); ``If-Match`` must name the current version, else 412."""
    check_type(resource_type)
    resource = await read_json_body(request)
    if not isinstance(resource, dict):
        raise InputError(ErrorCode.INVALID_RESOURCE, hints=["body: not a JSON object"])
    result = await run_in_threadpool(
        service.update, resource_type, resource_id, resource, if_match=request.headers.get("if-match")
    )
    return resource_response(request, result.stored, status=201 if result.created else 200)


@router.delete("/{resource_type}/{resource_id}", name="fhir.delete")
def delete(resource_type: str, resource_id: str, service: ServiceDep, _: Admin) -> Response:
    """Soft delete; later reads answer 410 and the history keeps every version."""
    service.delete(resource_type, resource_id)
    return Response(status_code=204)
