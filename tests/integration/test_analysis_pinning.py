"""The node's ``analysis`` app on a real node store: data pinned per job, snapshot ids, views, refusals.

Messages go straight to the node's warm app host (no coordinator): each test plays the coordinator's
part of one or two jobs and changes the node's data between steps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, Message, RecordDict

from common.analytics.task import (
    ANALYSIS_ERROR_CODE,
    PARTIAL_KEY,
    RECORD,
    REQUEST_KEY,
    ROUND_KEY,
    SNAPSHOT_KEY,
    TASK_KEY,
    decode_refusal,
    from_wire,
    to_wire,
)
from common.errors import ErrorCode
from common.flower import (
    assign_message_id,
    ensure_task_identity,
    flower_node_id,
    flower_run_id,
    message_from_bytes,
    message_to_bytes,
    stamp_run_id,
)
from common.privacy.policy import DisclosurePolicy
from node.config import NodeSettings
from node.datasets.registry import register_dataset
from node.datasets.schema import DatasetSchema
from node.federation.apps import ANALYSIS, builtin_apps
from node.federation.apps.analysis import PinCache, Pinned, analysis_app
from node.federation.disclosure import policy_release
from node.federation.host import ClientAppHost, InstalledApp
from node.federation.service import build_host
from node.federation.sources import node_source_loader
from node.fhir.service import FhirService
from node.runtime import init_node, open_service

QUERY = frozenset({"query"})
SCHEMA = DatasetSchema.model_validate(
    {"format": "csv", "columns": [{"name": "x", "type": "integer", "bounds": [0, 100]}]}
)


@dataclass
class Site:
    """A node's data directory, its FHIR service and its app host."""

    data_dir: Path
    service: FhirService
    host: ClientAppHost

    def dataset(self, values: list[int], *, replace: bool = False) -> None:
        """(Re-)register the dataset ``numbers`` with these values of ``x``."""
        path = self.data_dir / f"numbers-{uuid.uuid4().hex}.csv"
        path.write_text("x\n" + "".join(f"{v}\n" for v in values), encoding="utf-8")
        register_dataset(self.data_dir, "numbers", path, SCHEMA, replace=replace)

    def ask(self, job_id: str, task: dict[str, Any], request: Any = None, *, step: int = 1) -> Message:
        """One analysis step of ``job_id`` at this node; the reply."""
        record = ConfigRecord({TASK_KEY: to_wire(task), REQUEST_KEY: to_wire(request), ROUND_KEY: step})
        message = Message(RecordDict({RECORD: record}), self.host.node_id, "query")
        assign_message_id(message)
        stamp_run_id(message, flower_run_id(job_id))
        payload = self.host.handle(message_to_bytes(message), job_id=job_id, app=ANALYSIS, allowed_message_types=QUERY)
        return message_from_bytes(payload)


def _partial(reply: Message) -> tuple[Any, str]:
    assert not reply.has_error(), reply.error.reason
    record = reply.content.config_records[RECORD]
    return from_wire(str(record[PARTIAL_KEY])), str(record[SNAPSHOT_KEY])


def _refusal(reply: Message) -> tuple[ErrorCode, tuple[str, ...]]:
    assert reply.has_error()
    assert reply.error.code == ANALYSIS_ERROR_CODE
    return decode_refusal(reply.error.reason or "")


COUNT_NUMBERS = {"analysis": "count", "params": {"columns": ["x"]}, "source": {"dataset": "numbers"}}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """An initialised node with a ``numbers`` dataset and three patients, disclosure control off."""
    ensure_task_identity()
    settings = NodeSettings(data_dir=tmp_path)
    init_node(settings)
    service = open_service(settings)
    host = build_host(service, flower_node_id("pinning"), data_dir=tmp_path, disclosure=DisclosurePolicy.disabled())
    made = Site(tmp_path, service, host)
    made.dataset([1, 2, 3])
    for index, (gender, born) in enumerate([("female", "1950-03-01"), ("male", "1990-07-15"), ("female", "2001")]):
        service.create(
            {
                "resourceType": "Patient",
                "gender": gender,
                "birthDate": born,
                "identifier": [{"system": "urn:t", "value": str(index)}],
            }
        )
    yield made
    service.engine.dispose()


def test_a_job_keeps_reading_the_data_it_pinned_at_its_first_step(site: Site) -> None:
    """After the dataset is replaced, the running job still answers from its pinned rows with the same
    snapshot id; a new job reads the new rows under a new snapshot id."""
    first, snapshot = _partial(site.ask("job-a", COUNT_NUMBERS))
    site.dataset([1, 2, 3, 4, 5], replace=True)
    again, same_snapshot = _partial(site.ask("job-a", COUNT_NUMBERS, step=2))
    fresh, new_snapshot = _partial(site.ask("job-b", COUNT_NUMBERS))
    assert (first["rows"], again["rows"], fresh["rows"]) == (3, 3, 5)
    assert same_snapshot == snapshot != new_snapshot


def test_a_job_whose_pin_was_dropped_is_refused_when_its_data_changed(tmp_path: Path, site: Site) -> None:
    """With room for one job's frames, a second job pushes the first out; the first, its data replaced
    meanwhile, is refused (conflict, "changed since step 1") rather than answered from other data."""
    loader = node_source_loader(data_dir=site.data_dir, engine=site.service.engine)
    app = analysis_app(loader, policy_release(DisclosurePolicy.disabled()), cache=PinCache(max_jobs=1))
    site.host = ClientAppHost(node_id=site.host.node_id, apps={ANALYSIS: InstalledApp(app)})
    _partial(site.ask("job-a", COUNT_NUMBERS))
    _partial(site.ask("job-b", COUNT_NUMBERS))
    unchanged, _ = _partial(site.ask("job-a", COUNT_NUMBERS, step=2))  # reloaded: same data, same snapshot
    assert unchanged["rows"] == 3
    _partial(site.ask("job-b", COUNT_NUMBERS, step=2))
    site.dataset([7, 8], replace=True)
    code, hints = _refusal(site.ask("job-a", COUNT_NUMBERS, step=3))
    assert (code, hints) == (ErrorCode.CONFLICT, ("source: changed since step 1",))


def test_a_task_cannot_change_within_a_job(site: Site) -> None:
    """A second step that asks another analysis of the same job is refused."""
    _partial(site.ask("job-a", COUNT_NUMBERS))
    code, hints = _refusal(site.ask("job-a", {**COUNT_NUMBERS, "params": {}}, step=2))
    assert (code, hints) == (ErrorCode.INVALID_ANALYSIS, ("task: differs from step 1",))


def test_a_view_source_reads_the_materialised_rows_typed_and_filtered_by_age(site: Site) -> None:
    """patient_demographics as a source: a cohort of women aged 18+ on 2021-06-01 (a partial birth date
    counts as unknown) counts one patient; a new patient changes the view's snapshot id for a new job."""
    task = {
        "analysis": "count",
        "params": {"columns": ["birth_date"]},
        "source": {"view": "patient_demographics"},
        "cohort": {
            "all": [
                {"op": "=", "column": "gender", "value": "female"},
                {"op": ">=", "column": "birth_date", "age_at": "2021-06-01", "value": 18},
            ]
        },
    }
    counted, snapshot = _partial(site.ask("job-v", task))
    assert counted == {"rows": 1, "non_missing": [1]}
    everyone, same = _partial(site.ask("job-w", {**task, "cohort": None}))
    assert (everyone["rows"], same) == (3, snapshot)
    site.service.create({"resourceType": "Patient", "gender": "female", "birthDate": "1960-01-01"})
    more, changed = _partial(site.ask("job-x", task))
    assert (more["rows"], changed != snapshot) == (2, True)


def test_a_join_reads_both_sources_and_names_a_combined_snapshot(site: Site) -> None:
    """A cohort joined with another dataset keeps the rows whose key the other's cohort holds, and pins
    both sources: the job's snapshot id differs from the main source's own."""
    other = site.data_dir / "chosen.csv"
    other.write_text("x\n2\n3\n9\n", encoding="utf-8")
    register_dataset(site.data_dir, "chosen", other, SCHEMA)
    cohort = {
        "op": "in_cohort",
        "column": "x",
        "source": {"dataset": "chosen"},
        "key": "x",
        "where": {"op": "!=", "column": "x", "value": 3},
    }
    alone, snapshot = _partial(site.ask("job-a", COUNT_NUMBERS))
    joined, combined = _partial(site.ask("job-b", {**COUNT_NUMBERS, "cohort": cohort}))
    assert (alone["rows"], joined["rows"]) == (3, 1)  # x = 2 only: 3 is left out of "chosen", 9 is not in numbers
    assert combined != snapshot


@pytest.mark.parametrize(
    ("task", "code", "hint"),
    [
        ({**COUNT_NUMBERS, "source": {"dataset": "absent"}}, ErrorCode.NOT_FOUND, "source.dataset: not here"),
        ({**COUNT_NUMBERS, "source": {"view": "absent"}}, ErrorCode.NOT_FOUND, "source.view: not here"),
        ({**COUNT_NUMBERS, "columns": ["x", "y"]}, ErrorCode.INVALID_ANALYSIS, "columns[1]: no such column"),
        ({**COUNT_NUMBERS, "analysis": "median"}, ErrorCode.INVALID_ANALYSIS, "analysis: one of "),
        (
            {**COUNT_NUMBERS, "cohort": {"op": "<", "column": "x", "value": "secret-value"}},
            ErrorCode.INVALID_ANALYSIS,
            "cohort.value: type does not match the column",
        ),
        (
            {"analysis": "histogram", "params": {"column": "x", "lower": 5, "upper": 1, "bins": 2}, "source": {}},
            ErrorCode.INVALID_ANALYSIS,
            "source",
        ),
    ],
)
def test_refusals_carry_a_catalog_code_and_location_hints_only(
    site: Site, task: dict[str, Any], code: ErrorCode, hint: str
) -> None:
    """Bad tasks, unknown sources and columns come back as an analysis error reply: a code and a hint that
    names a location, never the submitted value."""
    refused_code, hints = _refusal(site.ask(f"job-{uuid.uuid4().hex}", task))
    assert refused_code is code
    assert hints[0].startswith(hint)
    assert not any("secret-value" in text for text in hints)


def test_with_disclosure_control_on_an_analysis_is_refused_not_released_unprotected(site: Site) -> None:
    """A node whose policy needs cell-key noise but whose release step has no disclosure secret refuses
    the analysis (fail closed) instead of releasing it without noise."""

    def no_features(seed: int) -> Any:
        raise AssertionError("not used by analyses")

    loader = node_source_loader(data_dir=site.data_dir, engine=site.service.engine)
    apps = builtin_apps(
        count_patients=lambda: 0,
        load_features=no_features,
        load_source=loader,
        release=policy_release(DisclosurePolicy()),
    )
    site.host = ClientAppHost(node_id=site.host.node_id, apps=apps)
    code, hints = _refusal(site.ask("job-a", COUNT_NUMBERS))
    assert code is ErrorCode.ANALYSIS_NOT_RELEASABLE
    assert hints == ("disclosure: this node has no disclosure secret for cell-key noise",)


def test_the_pin_cache_drops_idle_jobs_and_the_least_recently_used_beyond_its_size() -> None:
    """Pins idle longer than ``idle_s`` go; beyond ``max_jobs`` the least recently used one goes."""
    now = [0.0]
    cache = PinCache(max_jobs=2, idle_s=10.0, clock=lambda: now[0])

    def pin() -> Pinned:
        return Pinned(task_digest="t", snapshot="s", frames={}, used_at=0.0)

    cache.put(1, pin())
    cache.put(2, pin())
    now[0] = 5.0
    assert cache.get(1) is not None  # 1 is now the most recently used
    cache.put(3, pin())
    assert (cache.get(2), len(cache)) == (None, 2)
    now[0] = 14.0  # 3 was used at 5.0, 1 at 5.0: both idle 9 s
    assert cache.get(3) is not None
    now[0] = 15.5  # 1 idle 10.5 s
    assert cache.get(1) is None
    assert cache.get(3) is not None
