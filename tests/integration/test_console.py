"""The coordinator console in-process: sessions, roles, escaping and headers (TestClient, SQLite)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from coordinator.console import routes as console
from coordinator.console.sessions import SessionStore
from coordinator.store.db import make_engine, now_micros
from coordinator.store.jobs import JobStatus, RoundStatus, create_job, finish_round, set_job_status, start_round
from coordinator.store.migrate import upgrade
from coordinator.store.nodes import record_heartbeat, register_node
from coordinator.store.tokens import Principal, Role
from tests.integration.coordinator.conftest import CoordinatorClient, make_coordinator_client, new_public_key

ORIGIN = {"Origin": "http://testserver"}
EVIL_NAME = "<script>alert(1)</script> General"


def include_console(app: FastAPI) -> None:
    """Include the console's router unless the app already does."""
    if not any(getattr(route, "path", "") == "/console/login" for route in app.routes):
        app.include_router(console.router)


def token_of(headers: dict[str, str]) -> str:
    """The bearer token in an Authorization header."""
    return headers["Authorization"].removeprefix("Bearer ")


@pytest.fixture
def coordinator(tmp_path: Path) -> Iterator[CoordinatorClient]:
    """A coordinator app with the console on a migrated SQLite database."""
    url = f"sqlite:///{tmp_path / 'coordinator.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    made = make_coordinator_client(url, tmp_path)
    include_console(made.client.app)  # type: ignore[arg-type]
    with made.client:
        yield made
    made.engine.dispose()


def login(client: TestClient, token: str, *, origin: dict[str, str] = ORIGIN) -> object:
    """POST the login form as a browser on the same origin would."""
    return client.post("/console/login", data={"token": token}, headers=origin, follow_redirects=False)


def test_login_with_a_valid_token_sets_a_session_cookie_and_lands_on_the_nodes_page(
    coordinator: CoordinatorClient,
) -> None:
    """An admin token buys an HttpOnly, SameSite=Strict session cookie (not the token) and a redirect to nodes."""
    token = token_of(coordinator.admin)
    response = coordinator.client.post("/console/login", data={"token": token}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/nodes"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{console.COOKIE}=")
    assert "httponly" in set_cookie.lower()
    assert "samesite=strict" in set_cookie.lower()
    assert "path=/console" in set_cookie.lower()
    assert "secure" not in set_cookie.lower()  # plain http: a Secure cookie would never come back
    assert token not in set_cookie
    page = coordinator.client.get("/console/nodes")
    assert page.status_code == 200
    assert "<h1>Nodes</h1>" in page.text
    assert coordinator.client.get("/console/api/nodes").json() == {"nodes": []}


def test_the_session_cookie_is_secure_over_https(coordinator: CoordinatorClient) -> None:
    """Served over https, the session cookie carries the Secure attribute."""
    client = TestClient(coordinator.client.app, base_url="https://testserver")
    response = login(client, token_of(coordinator.observer), origin={"Origin": "https://testserver"})
    assert response.status_code == 303  # type: ignore[attr-defined]
    assert "; secure" in response.headers["set-cookie"].lower()  # type: ignore[attr-defined]


def test_a_wrong_token_is_refused_without_being_echoed(coordinator: CoordinatorClient) -> None:
    """A wrong token gets the form again with 401 and a fixed message, no cookie, and not the token."""
    wrong = "mfc_not-a-real-token-4f1d2c"
    response = coordinator.client.post("/console/login", data={"token": wrong}, headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 401
    assert wrong not in response.text
    assert "not-a-real-token" not in response.text
    assert "That token was not accepted." in response.text
    assert "set-cookie" not in response.headers
    assert coordinator.client.get("/console/api/nodes").status_code == 401


@pytest.mark.parametrize("origin", [{}, {"Origin": "https://evil.example"}, {"Origin": "null"}])
def test_login_and_logout_from_another_origin_are_refused(
    coordinator: CoordinatorClient, origin: dict[str, str]
) -> None:
    """A login or logout POST without this origin in its Origin header is refused (CSRF) and changes nothing."""
    response = coordinator.client.post(
        "/console/login", data={"token": token_of(coordinator.admin)}, headers=origin, follow_redirects=False
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    login(coordinator.client, token_of(coordinator.admin))
    assert coordinator.client.post("/console/logout", headers=origin, follow_redirects=False).status_code == 403
    assert coordinator.client.get("/console/api/nodes").status_code == 200  # still logged in


@pytest.mark.parametrize("path", ["/console", "/console/nodes", "/console/jobs", "/console/jobs/some-job"])
def test_console_pages_without_a_session_redirect_to_the_login_page(coordinator: CoordinatorClient, path: str) -> None:
    """Every console page answers 303 to the login page when there is no session."""
    response = coordinator.client.get(path, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"


@pytest.mark.parametrize("path", ["/console/api/nodes", "/console/api/jobs", "/console/api/jobs/some-job"])
def test_console_json_needs_a_session_not_a_bearer_token(coordinator: CoordinatorClient, path: str) -> None:
    """The console's JSON answers 401 without a session, even to a valid bearer token or a made-up cookie."""
    assert coordinator.client.get(path).status_code == 401
    assert coordinator.client.get(path, headers=coordinator.admin).status_code == 401
    coordinator.client.cookies.set(console.COOKIE, "made-up-session-id", path="/console")
    assert coordinator.client.get(path).status_code == 401
    assert coordinator.client.get(path).json()["error"]["code"] == "unauthenticated"


def test_console_pages_carry_a_content_security_policy_and_no_inline_script(coordinator: CoordinatorClient) -> None:
    """Console pages send CSP ``default-src 'self'`` and load their script from a file the app serves."""
    for response in (
        coordinator.client.get("/console/login"),
        coordinator.client.get("/console", follow_redirects=False),
    ):
        assert "default-src 'self'" in response.headers["content-security-policy"]
    login(coordinator.client, token_of(coordinator.admin))
    page = coordinator.client.get("/console/nodes")
    assert page.headers["content-security-policy"].startswith("default-src 'self'")
    assert page.headers["cache-control"] == "no-store"
    scripts = re.findall(r"<script[^>]*>", page.text)
    assert scripts == ['<script src="/console/static/console.js" defer>']
    assert "style=" not in page.text
    script = coordinator.client.get("/console/static/console.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert "fetch(" in script.text
    assert ".innerHTML" not in script.text
    assert coordinator.client.get("/console/static/console.css").status_code == 200
    assert coordinator.client.get("/console/static/other.js").status_code == 404


def test_a_node_name_with_markup_is_rendered_escaped(coordinator: CoordinatorClient) -> None:
    """A node named ``<script>...`` shows as text on the nodes page; the JSON carries it as data."""
    node = register_node(coordinator.engine, name=EVIL_NAME, public_key=new_public_key(), version='1.0"><b>')
    login(coordinator.client, token_of(coordinator.admin))
    page = coordinator.client.get("/console/nodes").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; General" in page
    assert "1.0&quot;&gt;&lt;b&gt;" in page
    rows = coordinator.client.get("/console/api/nodes").json()["nodes"]
    assert [(r["id"], r["name"]) for r in rows] == [(node.id, EVIL_NAME)]


def test_the_nodes_page_shows_liveness_version_and_flags_clock_skew(coordinator: CoordinatorClient) -> None:
    """A node heard from just now is online with its version; a skew over 30 s is flagged; a silent node is offline."""
    register_node(coordinator.engine, name="Site A", public_key=new_public_key())
    register_node(coordinator.engine, name="Site B", public_key=new_public_key())
    record_heartbeat(coordinator.engine, node_id="site-a", version="0.1.0", clock_skew_ms=-45_000)
    stale = now_micros() - int(coordinator.settings.node_offline_after_s * 2_000_000)
    record_heartbeat(coordinator.engine, node_id="site-b", version="0.0.9", clock_skew_ms=2_000, now=stale)
    login(coordinator.client, token_of(coordinator.observer))
    rows = {r["id"]: r for r in coordinator.client.get("/console/api/nodes").json()["nodes"]}
    assert (rows["site-a"]["state"], rows["site-a"]["version"], rows["site-a"]["skew_flagged"]) == (
        "online",
        "0.1.0",
        True,
    )
    assert rows["site-a"]["skew"] == "-45.0 s"
    assert (rows["site-b"]["state"], rows["site-b"]["skew_flagged"]) == ("offline", False)
    page = coordinator.client.get("/console/nodes").text
    assert 'class="skew-flagged"' in page
    assert 'class="state-offline"' in page


def test_roles_see_what_the_api_lets_them_see(coordinator: CoordinatorClient) -> None:
    """Researchers land on jobs and may not see nodes; observers see nodes and jobs."""
    researcher = TestClient(coordinator.client.app, base_url="http://testserver")
    response = login(researcher, token_of(coordinator.researcher))
    assert response.headers["location"] == "/console/jobs"  # type: ignore[attr-defined]
    assert researcher.get("/console/jobs").status_code == 200
    assert researcher.get("/console/nodes").status_code == 403
    assert researcher.get("/console/api/nodes").status_code == 403
    assert researcher.get("/console/api/jobs").status_code == 200
    observer = TestClient(coordinator.client.app, base_url="http://testserver")
    login(observer, token_of(coordinator.observer))
    assert observer.get("/console/nodes").status_code == 200
    assert observer.get("/console/api/jobs").status_code == 200


def test_logout_ends_the_session(coordinator: CoordinatorClient) -> None:
    """After logout the old session id is worthless and the cookie is cleared."""
    login(coordinator.client, token_of(coordinator.admin))
    session_id = coordinator.client.cookies[console.COOKIE]
    response = coordinator.client.post("/console/logout", headers=ORIGIN, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/console/login"
    assert (
        f'{console.COOKIE}=""' in response.headers["set-cookie"]
        or "max-age=0" in response.headers["set-cookie"].lower()
    )
    coordinator.client.cookies.set(console.COOKIE, session_id, path="/console")
    assert coordinator.client.get("/console/api/jobs").status_code == 401


def test_the_job_page_shows_rounds_by_nodes(coordinator: CoordinatorClient) -> None:
    """A job's page and JSON show its rounds x nodes grid from the rounds' per-node outcomes."""
    for name in ("Site A", "Site B"):
        register_node(coordinator.engine, name=name, public_key=new_public_key())
    job = create_job(
        coordinator.engine, kind="fedavg", spec={}, submitter="<i>dr who</i>", seed=1, node_ids=["site-a", "site-b"]
    )
    set_job_status(coordinator.engine, job_id=job.id, status=JobStatus.RUNNING)
    start_round(coordinator.engine, job_id=job.id, round=1)
    finish_round(
        coordinator.engine,
        job_id=job.id,
        round=1,
        status=RoundStatus.COMPLETED,
        replies=1,
        per_node={"site-a": {"train_s": 0.11}, "site-b": {"missed": True}},
    )
    start_round(coordinator.engine, job_id=job.id, round=2)
    login(coordinator.client, token_of(coordinator.researcher))
    detail = coordinator.client.get(f"/console/api/jobs/{job.id}").json()
    assert [n["id"] for n in detail["nodes"]] == ["site-a", "site-b"]
    assert [[c["state"] for c in r["cells"]] for r in detail["rounds"]] == [["replied", "missed"], ["waiting"] * 2]
    assert detail["rounds"][0]["cells"][0]["detail"] == "train_s=0.11"
    assert detail["job"]["status"] == "running"
    page = coordinator.client.get(f"/console/jobs/{job.id}").text
    assert 'id="rounds"' in page
    assert 'class="cell-missed"' in page
    assert "&lt;i&gt;dr who&lt;/i&gt;" in page
    assert f'data-poll="/console/api/jobs/{job.id}"' in page
    jobs = coordinator.client.get("/console/jobs").text
    assert f'href="/console/jobs/{job.id}"' in jobs
    assert coordinator.client.get("/console/jobs/no-such-job").status_code == 404
    assert coordinator.client.get("/console/api/jobs/no-such-job").status_code == 404


def test_sessions_expire_when_idle_and_at_their_absolute_limit() -> None:
    """A session ends after its idle time without requests, and at its absolute lifetime even when used."""
    now = [0.0]
    store = SessionStore(ttl_s=100.0, idle_s=10.0, clock=lambda: now[0])
    principal = Principal(token_id=1, role=Role.ADMIN)
    idle = store.create(principal)
    busy = store.create(principal)
    for _ in range(9):
        now[0] += 9.0
        assert store.get(busy) == principal
    assert store.get(idle) is None
    now[0] = 100.0
    assert store.get(busy) is None
    assert store.get("") is None
    assert len(store) == 0


def test_the_session_store_stays_bounded() -> None:
    """Beyond ``max_sessions`` the session closest to its expiry is ended."""
    now = [0.0]
    store = SessionStore(max_sessions=2, clock=lambda: now[0])
    principal = Principal(token_id=1, role=Role.OBSERVER)
    first = store.create(principal)
    now[0] += 1
    second = store.create(principal)
    now[0] += 1
    third = store.create(principal)
    assert (store.get(first), store.get(second), store.get(third)) == (None, principal, principal)


def test_every_console_route_but_login_and_static_files_needs_a_session(coordinator: CoordinatorClient) -> None:
    """Route by route: without a session, pages redirect to the login page and JSON answers 401."""
    open_paths = {"/console/login", "/console/static/{name}"}
    checked = 0
    for route in console.router.routes:
        path = getattr(route, "path", "")
        if "GET" not in getattr(route, "methods", set()) or path in open_paths:
            continue
        response = coordinator.client.get(path.replace("{job_id}", "x1"), follow_redirects=False)
        if path.startswith("/console/api/"):
            assert response.status_code == 401, path
        else:
            assert (response.status_code, response.headers["location"]) == (303, "/console/login"), path
        checked += 1
    assert checked >= 6
