"""``from medfed.sdk import Federation``: a small client of the coordinator's jobs API.

httpx over TLS that trusts only the coordinator's CA (the file ``medfed coordinator init`` wrote, or the
one a node pinned), with the bearer token ``medfed coordinator researcher add`` printed. Every method
returns the API's JSON; an error answer raises :class:`FederationError` with its code and public message.

Jobs are signed: ``Federation(url, token=..., ca_file=..., researcher_key=PATH, study=S)`` signs every
job it submits with the researcher's key (``medfed researcher init``) for study ``S`` (or the study a spec
names, or ``submit(..., study=...)``). The spec is signed in the normal form the coordinator stores —
every default filled in — because each node compares the job's messages to it field by field
(``docs/trust.md``).

Analyses: :meth:`Federation.analyse` submits an ``analysis`` job, waits for it and returns its result
as a pandas DataFrame (:mod:`medfed.results`: suppression flags and the nodes' disclosure metadata);
:meth:`Federation.submit_analysis` only submits a spec (a dict, as in a YAML spec file).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

from common.crypto import SigningKey, client_ssl_context, load_private_key_pem
from common.errors import MedfedError
from common.trust import sign_job

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Federation", "FederationError"]

_TERMINAL = frozenset(("succeeded", "failed", "cancelled"))


class FederationError(Exception):
    """The coordinator refused a request (``status``, ``code``) or could not be reached (``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}" if status == 0 else f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Federation:
    """The coordinator at ``url`` as one token holder sees it."""

    def __init__(
        self,
        url: str,
        *,
        token: str,
        ca_file: Path | str,
        researcher_key: Path | str | None = None,
        study: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        """Raises OSError when the CA file cannot be read, ConfigError when the key file is not a private key
        that only its owner may read. Without ``researcher_key`` the client reads, but cannot submit."""
        self._key = None if researcher_key is None else SigningKey.from_pem(load_private_key_pem(Path(researcher_key)))
        self._study = study
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

    def sign(self, spec: Mapping[str, Any], *, study: str | None = None) -> dict[str, Any]:
        """The signed job document of ``spec`` (normalised as the coordinator stores it) for ``study`` (default:
        the spec's study, else this client's); FederationError ``job_not_signed`` without a key or a study,
        ``invalid_request`` for a spec the coordinator would refuse."""
        if self._key is None:
            raise FederationError(0, "job_not_signed", "jobs are signed: give Federation(researcher_key=...)")
        chosen = study or spec.get("study") or self._study
        if not isinstance(chosen, str):
            raise FederationError(0, "job_not_signed", "name the job's study (Federation(study=...) or study=...)")
        # The one shared definition of the built-in kinds and their defaults (medfed is the face: it may).
        from coordinator.federation.jobs.specs import parse_spec

        try:
            normal = parse_spec(dict(spec)).model_dump(mode="json")
            return sign_job(self._key, normal, study=chosen)
        except MedfedError as exc:
            hints = "; ".join(exc.hints)
            raise FederationError(400, str(exc.code), f"{exc.public_message} {hints}".strip()) from None

    def submit(self, spec: dict[str, Any], *, seed: int | None = None, study: str | None = None) -> dict[str, Any]:
        """Sign and submit a job (``spec`` with a ``kind``); the job as recorded, with its ``id``."""
        body: dict[str, Any] = {"signed": self.sign(spec, study=study)}
        if seed is not None:
            body["seed"] = seed
        return self._call("POST", "/api/jobs", body)

    def submit_signed(self, signed: dict[str, Any], *, seed: int | None = None) -> dict[str, Any]:
        """Submit a job document signed already (:meth:`sign`); the job as recorded."""
        body: dict[str, Any] = {"signed": signed}
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

    def submit_analysis(
        self, spec: Mapping[str, Any], *, seed: int | None = None, study: str | None = None
    ) -> dict[str, Any]:
        """Sign and submit an ``analysis`` job spec (``kind`` may be left out); the job as recorded."""
        return self.submit({**dict(spec), "kind": "analysis"}, seed=seed, study=study)

    def wait(self, job_id: str, *, timeout: float = 600.0, interval: float = 0.2) -> dict[str, Any]:
        """The job once it has ended (polled every ``interval`` s); FederationError ``timeout`` after ``timeout`` s."""
        ends = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if job["status"] in _TERMINAL:
                return job
            if time.monotonic() >= ends:
                raise FederationError(0, "timeout", f"job {job_id} has not ended")
            time.sleep(interval)

    def analysis_result(self, job_id: str) -> pd.DataFrame:
        """An ended analysis job's result as a DataFrame; FederationError ``job_failed`` with its reason."""
        from medfed.results import result_frame

        outcome = self.results(job_id)
        if outcome["status"] != "succeeded" or outcome["result"] is None:
            raise FederationError(409, f"job_{outcome['status']}", str(outcome.get("error") or ""))
        return result_frame(outcome["result"])

    def analyse(
        self,
        analysis: str,
        params: Mapping[str, Any],
        *,
        source: Mapping[str, str],
        columns: Sequence[str] | None = None,
        cohort: Mapping[str, Any] | None = None,
        nodes: Sequence[str] | None = None,
        timeout: float = 600.0,
        **options: Any,
    ) -> pd.DataFrame:
        """Run ``analysis`` over ``source`` at the nodes and return its result (see :mod:`medfed.results`).

        ``source`` is ``{"dataset": NAME}`` or ``{"view": NAME}``; ``options`` are further spec fields
        (``round_timeout_s``, ``max_rounds``). Raises FederationError when the job fails (its reason in
        the message) or does not end within ``timeout`` s.
        """
        spec: dict[str, Any] = {"analysis": analysis, "params": dict(params), "source": dict(source), **options}
        if columns is not None:
            spec["columns"] = list(columns)
        if cohort is not None:
            spec["cohort"] = dict(cohort)
        if nodes is not None:
            spec["nodes"] = list(nodes)
        job = self.submit_analysis(spec)
        self.wait(job["id"], timeout=timeout)
        return self.analysis_result(job["id"])

    def model_bytes(self, job_id: str, *, round: int | None = None) -> tuple[bytes, int, bool]:
        """The job's saved model (model bytes, :mod:`common.models.checkpoints`), its round, and whether final.

        The model saved after the job's last completed round (the final model once the job succeeded), or
        after ``round`` when given (the coordinator keeps every round's model within its retention budget).
        """
        params = {} if round is None else {"round": round}
        try:
            response = self._client.get(f"/api/jobs/{job_id}/model", params=params)
        except httpx.HTTPError as exc:
            raise FederationError(0, "unreachable", type(exc).__name__) from None
        if response.is_error:
            try:
                error = response.json().get("error", {})
            except (ValueError, AttributeError):
                error = {}
            raise FederationError(response.status_code, str(error.get("code", "")), str(error.get("message", "")))
        return (
            response.content,
            int(response.headers.get("X-Medfed-Round", "0")),
            (response.headers.get("X-Medfed-Final") == "true"),
        )

    def save_model(self, job_id: str, path: Path | str, *, round: int | None = None) -> tuple[int, bool]:
        """Write the job's saved model (of ``round``, default the last) to ``path`` as a torch ``state_dict``
        file; its round and finality.

        Load it with ``torch.load(path, weights_only=True)`` (or
        :func:`common.models.checkpoints.load_state_dict`) and ``model.load_state_dict(...)``.
        """
        from common.models.checkpoints import save_state_dict, state_dict_from_bytes

        data, server_round, final = self.model_bytes(job_id, round=round)
        save_state_dict(state_dict_from_bytes(data), Path(path))
        return server_round, final
