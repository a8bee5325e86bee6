"""FHIR on the wire: reading JSON bodies under a size cap, writing resources and search Bundles.

Stored resources are already serialised JSON, so Bundles are assembled from those bytes instead of
parsing and re-serialising every resource.
"""

from __future__ import annotations

from collections.abc import Sequence
from email.utils import formatdate
from typing import Any
from urllib.parse import urlencode

import orjson
from fastapi import Request
from fastapi.responses import Response

from common.errors import ErrorCode, InputError
from node.api.errors import FHIR_JSON
from node.fhir.query import encode_page_token
from node.fhir.resources import format_instant, now_micros
from node.fhir.service import SearchResult
from node.store.resources import StoredResource

__all__ = ["base_url", "bundle_response", "media_type", "read_body", "read_json_body", "resource_response"]

_JSON_TYPES = ("application/fhir+json", "application/json", "application/json+fhir")


def media_type(request: Request, default: str) -> str:
    """The request's media type without parameters, lower-cased."""
    return request.headers.get("content-type", default).split(";")[0].strip().lower()


async def read_json_body(request: Request) -> Any:
    """The parsed JSON body; 413 over the node's limit, 415 for other media types, 400 if malformed."""
    if media_type(request, "application/fhir+json") not in _JSON_TYPES:
        raise InputError(ErrorCode.UNSUPPORTED_MEDIA_TYPE)
    try:
        return orjson.loads(await read_body(request))
    except orjson.JSONDecodeError:
        raise InputError(ErrorCode.MALFORMED_JSON) from None


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 as soon as it exceeds the node's limit."""
    limit: int = request.app.state.settings.max_request_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise InputError(ErrorCode.PAYLOAD_TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise InputError(ErrorCode.PAYLOAD_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def base_url(request: Request) -> str:
    """The FHIR base URL, absolute: configured, or derived from the request."""
    configured: str | None = request.app.state.settings.public_base_url
    if configured:
        return configured.rstrip("/")
    return str(request.base_url).rstrip("/") + "/fhir"


def resource_response(request: Request, stored: StoredResource, *, status: int = 200) -> Response:
    """One resource with its ETag, Last-Modified and (for creates) Location."""
    headers = {
        "ETag": f'W/"{stored.version_id}"',
        "Last-Modified": _http_date(stored.last_updated),
    }
    if status == 201:
        headers["Location"] = f"{base_url(request)}/{stored.resource_type}/{stored.id}/_history/{stored.version_id}"
    return Response(stored.content, status_code=status, media_type=FHIR_JSON, headers=headers)


def _http_date(micros: int) -> str:
    return formatdate(micros / 1_000_000, usegmt=True)


def _entry(base: str, stored: StoredResource, mode: str) -> bytes:
    full_url = f"{base}/{stored.resource_type}/{stored.id}"
    return b"".join(
        (
            b'{"fullUrl":',
            orjson.dumps(full_url),
            b',"resource":',
            stored.content,
            b',"search":{"mode":"',
            mode.encode(),
            b'"}}',
        )
    )


def bundle_response(
    request: Request,
    result: SearchResult,
    *,
    path: str,
    params: Sequence[tuple[str, str]],
    count: int,
    bundle_type: str = "searchset",
) -> Response:
    """A searchset Bundle with absolute self and next links (the next link's page token is opaque)."""
    base = base_url(request)
    kept = [(n, v) for n, v in params if n != "_page"]
    if not any(n == "_count" for n, _ in kept):
        kept.append(("_count", str(count)))
    links = [{"relation": "self", "url": _url(base, path, kept)}]
    if result.next_offset is not None:
        token = encode_page_token(result.next_offset, kept)
        links.append({"relation": "next", "url": _url(base, path, [*kept, ("_page", token)])})
    head: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": bundle_type,
        "meta": {"lastUpdated": format_instant(now_micros())},
    }
    if result.total is not None:
        head["total"] = result.total
    head["link"] = links
    entries = [_entry(base, s, "match") for s in result.matches]
    entries += [_entry(base, s, "include") for s in result.included]
    body = orjson.dumps(head)[:-1] + b',"entry":[' + b",".join(entries) + b"]}"
    return Response(body, media_type=FHIR_JSON)


def _url(base: str, path: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{path}" + (f"?{query}" if query else "")
