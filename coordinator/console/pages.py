"""The console's HTML, built from the rows of :mod:`coordinator.console.views`.

Every value that comes from the store (node names come from the nodes themselves) passes through
:func:`html.escape`; there is no inline script or style, so the pages work under
``Content-Security-Policy: default-src 'self'``. ``static/console.js`` re-renders the same tables
from the page's ``data-poll`` endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

__all__ = ["error_page", "job_page", "jobs_page", "login_page", "nodes_page"]

_NODE_HEADINGS = ("Name", "Id", "State", "Version", "Last seen (UTC)", "Clock skew")
_JOB_HEADINGS = ("Job", "Kind", "Status", "Submitter", "Created (UTC)", "Started (UTC)", "Finished (UTC)")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def job_href(job_id: str) -> str:
    """The console page of a job."""
    return "/console/jobs/" + quote(job_id, safe="")


def _layout(title: str, body: str, *, nav: Mapping[str, str] | None = None, poll: tuple[str, str] | None = None) -> str:
    links = "".join(f'<a href="{_e(href)}">{_e(label)}</a> ' for label, href in (nav or {}).items())
    logout = (
        '<form method="post" action="/console/logout" class="logout"><button type="submit">Log out</button></form>'
        if nav is not None
        else ""
    )
    main_attrs = f' data-view="{_e(poll[0])}" data-poll="{_e(poll[1])}"' if poll else ""
    live = '<p class="live" id="live" aria-live="polite">live</p>' if poll else ""
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)} · medfed</title>"
        '<link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml">'
        '<link rel="stylesheet" href="/console/static/console.css">'
        '<script src="/console/static/console.js" defer></script>'
        "</head><body>"
        f'<header><span class="brand">medfed coordinator</span><nav>{links}</nav>{logout}</header>'
        f"<main{main_attrs}><h1>{_e(title)}</h1>{live}{body}</main>"
        "</body></html>\n"
    )


def _table(table_id: str, headings: Iterable[str], rows: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    return f'<table id="{_e(table_id)}"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>'


def login_page(*, refused: bool = False) -> str:
    """The login form; ``refused`` adds a fixed message (the submitted token is never echoed)."""
    message = '<p class="error" role="alert">That token was not accepted.</p>' if refused else ""
    form = (
        f"{message}"
        '<form method="post" action="/console/login" class="login">'
        '<label for="token">Coordinator API token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required>'
        '<button type="submit">Log in</button></form>'
    )
    return _layout("Log in", form)


def error_page(title: str, message: str, *, nav: Mapping[str, str]) -> str:
    """A page that says why the request was refused."""
    return _layout(title, f'<p class="error">{_e(message)}</p>', nav=nav)


def nodes_page(rows: Sequence[Mapping[str, Any]], *, nav: Mapping[str, str]) -> str:
    """The nodes table."""
    body = "".join(
        f'<tr data-node-id="{_e(r["id"])}"><td>{_e(r["name"])}</td><td>{_e(r["id"])}</td>'
        f'<td class="state-{_e(r["state"])}">{_e(r["state"])}</td><td>{_e(r["version"])}</td>'
        f"<td>{_e(r['last_seen'])}</td>"
        f'<td class="{"skew-flagged" if r["skew_flagged"] else ""}">{_e(r["skew"])}'
        f"{' ⚠' if r['skew_flagged'] else ''}</td></tr>"
        for r in rows
    )
    return _layout("Nodes", _table("nodes", _NODE_HEADINGS, body), nav=nav, poll=("nodes", "/console/api/nodes"))


def _job_cells(r: Mapping[str, Any]) -> str:
    return (
        f'<td><a href="{_e(job_href(r["id"]))}">{_e(r["id"])}</a></td><td>{_e(r["kind"])}</td>'
        f'<td class="status-{_e(r["status"])}">{_e(r["status"])}</td><td>{_e(r["submitter"])}</td>'
        f"<td>{_e(r['created'])}</td><td>{_e(r['started'])}</td><td>{_e(r['finished'])}</td>"
    )


def jobs_page(rows: Sequence[Mapping[str, Any]], *, nav: Mapping[str, str]) -> str:
    """The jobs table, newest first."""
    body = "".join(f'<tr data-job-id="{_e(r["id"])}">{_job_cells(r)}</tr>' for r in rows)
    return _layout("Jobs", _table("jobs", _JOB_HEADINGS, body), nav=nav, poll=("jobs", "/console/api/jobs"))


def job_page(detail: Mapping[str, Any], *, nav: Mapping[str, str]) -> str:
    """One job: its summary and the rounds x nodes grid."""
    job = detail["job"]
    summary = _table("job", _JOB_HEADINGS, f"<tr>{_job_cells(job)}</tr>")
    error = f'<p class="error" id="job-error">{_e(job["error"])}</p>'
    head = [
        "Round",
        "Status",
        "Replies",
        *(f"{c['id']} ({c['status']})" if c["status"] else c["id"] for c in detail["nodes"]),
    ]
    body = "".join(
        f'<tr data-round="{_e(r["round"])}"><td>{_e(r["round"])}</td>'
        f'<td class="status-{_e(r["status"])}">{_e(r["status"])}</td><td>{_e(r["replies"])}</td>'
        + "".join(
            f'<td class="cell-{_e(c["state"])}"><span class="state">{_e(c["state"])}</span>'
            f'<span class="detail">{_e(c["detail"])}</span></td>'
            for c in r["cells"]
        )
        + "</tr>"
        for r in detail["rounds"]
    )
    grid = "<h2>Rounds × nodes</h2>" + _table("rounds", head, body)
    return _layout(
        f"Job {job['id']}",
        summary + error + grid,
        nav=nav,
        poll=("job", "/console/api/jobs/" + quote(job["id"], safe="")),
    )
