"""``from medfed.sdk import Federation``: a small client of the coordinator's jobs API.

httpx over TLS that trusts only the coordinator's CA (the file ``medfed coordinator init`` wrote, or the
one a node pinned), with a bearer token from ``medfed coordinator token create``. Every method returns
the API's JSON; an error answer raises :class:`FederationError` with its code and public message.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from common.crypto import client_ssl_context

__all__ = ["Federation", "FederationError"]


class FederationError(Exception):
    """The coordinator refused a request (``status``, ``code``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status == 0 else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Federation:
    """The coordinator at ``url`` as one token holder sees it."""

    def __init__(self, url: str, *, token: str, ca_file: Path | str, timeout: float = 30.0) -> None:
        """Raises OSError when the CA file cannot be read."""
        context = client_ssl_context(Path(ca_file).read_bytes())
        self._client = httpx.Client(
            base_url=url.rstrip("/"),
            verify=context,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )

    def __enter__(self) -> Federation:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _value: BaseException | None, _traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise FederationError(0, "unreachable", type(exc).__name__) from None
        try:
            payload: Any = response.json()
        except ValueError:
            payload = {}
        if response.is_error:
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            raise FederationError(response.status_code, str(error.get("code", "")), str(error.get("message", "")))
        if not isinstance(payload, dict):
            raise FederationError(response.status_code, "invalid_response", "the answer is not a JSON object")
        return payload

    def submit(self, spec: dict[str, Any], *, seed: int | None = None) -> dict[str, Any]:
        """Submit a job (``spec`` with a ``kind``); the job as recorded, with its ``id``."""
        body: dict[str, Any] = {"spec": spec}
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "/api/jobs", body)

    def jobs(self) -> list[dict[str, Any]]:
        """The latest jobs, newest first."""
        listed: list[dict[str, Any]] = self._call("GET", "/api/jobs")["jobs"]
        return listed

    def job(self, job_id: str) -> dict[str, Any]:
        """One job with its nodes and rounds."""
        return self._call("GET", f"/api/jobs/{job_id}")

    def results(self, job_id: str) -> dict[str, Any]:
        """An ended job's result or error (409 ``conflict`` while it runs)."""
        return self._call("GET", f"/api/jobs/{job_id}/results")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job that has not ended."""
        return self._call("POST", f"/api/jobs/{job_id}/cancel")
