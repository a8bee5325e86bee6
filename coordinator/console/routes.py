"""The console's routes under ``/console``: login and logout, the pages, their JSON and static files.

Pages need a session (else 303 to the login page) and the API's roles: admins and observers see nodes;
every role sees jobs. The JSON under ``/console/api`` answers 401 without a session and is what
``static/console.js`` polls every second. Failed logins count against the client address like refused
API tokens (:func:`coordinator.api.deps.authenticate_token`: 429 past the budget). Login and logout are
form POSTs guarded by the SameSite=Strict cookie and an Origin check (the request's own origin, nothing
else). Every console response carries ``Content-Security-Policy: default-src 'self'`` and is not cached.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Coroutine
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute

from common.errors import AccessError, ErrorCode, MedfedError, NotFoundError
from coordinator.api.deps import authenticate_token
from coordinator.console import pages, views
from coordinator.console.sessions import SessionStore
from coordinator.store.db import now_micros
from coordinator.store.jobs import get_job, list_job_nodes, list_jobs, list_rounds
from coordinator.store.nodes import list_nodes
from coordinator.store.tokens import Principal, Role

__all__ = ["COOKIE", "CSP", "router", "sessions"]

COOKIE = "medfed_console"
CSP = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
_SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_NETWORK_VIEWERS = frozenset({Role.ADMIN, Role.OBSERVER})
_MAX_FORM_BYTES = 4096
_STATIC = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_store_lock = threading.Lock()


class _ConsoleRoute(APIRoute):
    """Adds the console's security headers to every response its routes return."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_headers(request: Request) -> Response:
            response = await handler(request)
            for name, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return with_headers


router = APIRouter(prefix="/console", include_in_schema=False, route_class=_ConsoleRoute)


def sessions(request: Request) -> SessionStore:
    """The app's console sessions, created on first use (the app may also set ``state.console_sessions``)."""
    state = request.app.state
    store: SessionStore | None = getattr(state, "console_sessions", None)
    if store is None:
        with _store_lock:
            store = getattr(state, "console_sessions", None)
            if store is None:
                store = SessionStore()
                state.console_sessions = store
    return store


def _principal(request: Request) -> Principal | None:
    return sessions(request).get(request.cookies.get(COOKIE))


def _nav(principal: Principal) -> dict[str, str]:
    nav = {"Nodes": "/console/nodes"} if principal.role in _NETWORK_VIEWERS else {}
    nav["Jobs"] = "/console/jobs"
    return nav


def _landing(principal: Principal) -> str:
    return "/console/nodes" if principal.role in _NETWORK_VIEWERS else "/console/jobs"


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _same_origin(request: Request) -> bool:
    """True when the browser says the request comes from this very origin (CSRF guard for POSTs)."""
    origin = request.headers.get("origin")
    host = request.headers.get("host")
    return origin is not None and host is not None and origin == f"{request.url.scheme}://{host}"


def _forbidden(principal: Principal) -> HTMLResponse:
    page = pages.error_page("Not allowed", "Your role cannot see this page.", nav=_nav(principal))
    return HTMLResponse(page, status_code=403)


def _api_principal(request: Request, allowed: frozenset[Role] = frozenset(Role)) -> Principal:
    principal = _principal(request)
    if principal is None:
        raise AccessError(ErrorCode.UNAUTHENTICATED, detail="console request without a session")
    if principal.role not in allowed:
        raise AccessError(ErrorCode.FORBIDDEN)
    return principal


# ---- login and logout -------------------------------------------------------------------------


@router.get("", name="console")
def console_root(request: Request) -> Response:
    """The landing page of the logged-in role, else the login page."""
    principal = _principal(request)
    return _redirect("/console/login" if principal is None else _landing(principal))


@router.get("/login", name="console_login_form")
def login_form(request: Request) -> Response:
    """The login form (or the landing page when a session exists)."""
    principal = _principal(request)
    if principal is not None:
        return _redirect(_landing(principal))
    return HTMLResponse(pages.login_page())


async def _form_token(request: Request) -> str | None:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        return None
    values = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    token = values.get("token", [""])[0].strip()
    return token or None


@router.post("/login", name="console_login")
async def login(request: Request) -> Response:
    """Exchange an API token for a session cookie; a refused token gets the form again, unechoed."""
    if not _same_origin(request):
        return HTMLResponse(pages.login_page(), status_code=403)
    try:
        token = await _form_token(request)
    except ValueError:  # too many fields
        token = None
    try:
        principal = await run_in_threadpool(authenticate_token, request, token)
    except MedfedError as refused:  # 401, or 429 for an address over its budget of failed logins
        return HTMLResponse(pages.login_page(refused=True), status_code=refused.status)
    store = sessions(request)
    session_id = store.create(principal)
    response = _redirect(_landing(principal))
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(store.ttl_s),
        path="/console",
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="strict",
    )
    return response


@router.post("/logout", name="console_logout")
def logout(request: Request) -> Response:
    """End the session and clear its cookie."""
    if not _same_origin(request):
        return HTMLResponse(pages.login_page(), status_code=403)
    sessions(request).end(request.cookies.get(COOKIE))
    response = _redirect("/console/login")
    response.delete_cookie(
        COOKIE, path="/console", httponly=True, secure=request.url.scheme == "https", samesite="strict"
    )
    return response


# ---- pages ------------------------------------------------------------------------------------


def _node_rows(request: Request) -> list[dict[str, Any]]:
    settings = request.app.state.settings
    return views.node_rows(
        list_nodes(request.app.state.engine), now=now_micros(), offline_after_s=settings.node_offline_after_s
    )


def _job_detail(request: Request, job_id: str) -> dict[str, Any]:
    engine = request.app.state.engine
    job = get_job(engine, job_id=job_id)
    return views.job_detail(job, list_job_nodes(engine, job_id=job_id), list_rounds(engine, job_id=job_id))


@router.get("/nodes", name="console_nodes")
def nodes_page(request: Request) -> Response:
    """Every node: online or offline, version, last seen, clock skew (admins and observers)."""
    principal = _principal(request)
    if principal is None:
        return _redirect("/console/login")
    if principal.role not in _NETWORK_VIEWERS:
        return _forbidden(principal)
    return HTMLResponse(pages.nodes_page(_node_rows(request), nav=_nav(principal)))


@router.get("/jobs", name="console_jobs")
def jobs_page(request: Request) -> Response:
    """The latest jobs, newest first."""
    principal = _principal(request)
    if principal is None:
        return _redirect("/console/login")
    rows = [views.job_row(job) for job in list_jobs(request.app.state.engine)]
    return HTMLResponse(pages.jobs_page(rows, nav=_nav(principal)))


@router.get("/jobs/{job_id}", name="console_job")
def job_page(request: Request, job_id: str) -> Response:
    """One job with its rounds x nodes grid."""
    principal = _principal(request)
    if principal is None:
        return _redirect("/console/login")
    try:
        detail = _job_detail(request, job_id)
    except NotFoundError:
        page = pages.error_page("No such job", "There is no job with this id.", nav=_nav(principal))
        return HTMLResponse(page, status_code=404)
    return HTMLResponse(pages.job_page(detail, nav=_nav(principal)))


# ---- JSON for the live pages ------------------------------------------------------------------


@router.get("/api/nodes", name="console_api_nodes")
def api_nodes(request: Request) -> JSONResponse:
    """The nodes table's rows (admins and observers)."""
    _api_principal(request, _NETWORK_VIEWERS)
    return JSONResponse({"nodes": _node_rows(request)})


@router.get("/api/jobs", name="console_api_jobs")
def api_jobs(request: Request) -> JSONResponse:
    """The jobs table's rows."""
    _api_principal(request)
    return JSONResponse({"jobs": [views.job_row(job) for job in list_jobs(request.app.state.engine)]})


@router.get("/api/jobs/{job_id}", name="console_api_job")
def api_job(request: Request, job_id: str) -> JSONResponse:
    """One job and its rounds x nodes grid; 404 for an unknown job."""
    _api_principal(request)
    return JSONResponse(_job_detail(request, job_id))


# ---- static files -----------------------------------------------------------------------------

_ASSETS = {name: (files("coordinator.console") / "static" / name).read_bytes() for name in _STATIC}


@router.get("/static/{name}", name="console_static")
def static(name: str) -> Response:
    """The console's script and stylesheet (served by the app itself: no CDN)."""
    if name not in _ASSETS:
        raise NotFoundError(detail="no such console asset")
    return Response(_ASSETS[name], media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})
