"""The node's publisher: the write-path queue, what it sends to the index, consent, rotation, failures.

The coordinator is replaced by a recording link here (the real index is exercised in
``test_locator_network.py`` and ``coordinator/test_index_api.py``); every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from common.errors import ErrorCode, InternalError
from common.linkage import FileKeyProvider, LinkageKey, generate_key_file, rotate_key_file
from node.fhir.service import FhirService
from node.linkage.consent import research_excluded_patient_keys, sharing_opted_out
from node.linkage.outbox import OUTBOX, enqueue_all_patients
from node.linkage.publisher import LinkagePublisher
from node.store.db import make_engine, write_transaction
from tests.locator_data import opt_out_consent, patient


class RecordingLink:
    """Answers like the index and remembers every request; ``fail`` makes the next calls fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail = False

    def post_json(self, path: str, body: Any, *, timeout: float | None = None) -> Any:
        if self.fail:
            raise InternalError(ErrorCode.COORDINATOR_UNAVAILABLE)
        self.calls.append((path, body))
        return {}

    def published(self) -> list[str]:
        return [r["ref"] for path, body in self.calls if path.endswith("/publish") for r in body["records"]]

    def withdrawn(self, *, person: bool) -> list[str]:
        return [
            ref
            for path, body in self.calls
            if path.endswith("/withdraw") and body["person"] is person
            for ref in body["refs"]
        ]


@pytest.fixture
def service(database_url: str) -> Iterator[FhirService]:
    """A FhirService over the migrated test database."""
    engine = make_engine(database_url)
    yield FhirService(engine)
    engine.dispose()


@pytest.fixture
def keys(tmp_path: Path) -> FileKeyProvider:
    """A new network key in a 0600 file."""
    generate_key_file(tmp_path / "network.key")
    return FileKeyProvider(tmp_path / "network.key")


def _queued(service: FhirService) -> int:
    with service.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(OUTBOX)).scalar_one())


def test_a_created_patient_is_queued_in_its_write_and_published_once(
    service: FhirService, keys: FileKeyProvider
) -> None:
    """Creating a patient queues it; one pass publishes it under an opaque reference; an unchanged one is not resent."""
    link = RecordingLink()
    publisher = LinkagePublisher(service.engine, keys, link)
    patient_id = service.create(patient(mrn="M-1")).stored.id
    assert _queued(service) == 1

    summary = publisher.drain()

    assert summary.published == 1
    assert _queued(service) == 0
    [ref] = link.published()
    assert patient_id not in ref
    service.update("Patient", patient_id, {**patient(mrn="M-1"), "id": patient_id})  # same demographics
    assert publisher.drain().unchanged == 1
    assert link.published() == [ref]


def test_a_changed_patient_is_republished_and_a_deleted_one_withdrawn(
    service: FhirService, keys: FileKeyProvider
) -> None:
    """New demographics: the same reference published again; deleted: that reference withdrawn."""
    link = RecordingLink()
    publisher = LinkagePublisher(service.engine, keys, link)
    patient_id = service.create(patient()).stored.id
    publisher.drain()
    service.update("Patient", patient_id, {**patient(line="1 New Street"), "id": patient_id})
    publisher.drain()
    service.delete("Patient", patient_id)
    publisher.drain()
    first, second = link.published()
    assert first == second
    assert link.withdrawn(person=False) == [first]


def test_a_sharing_opt_out_publishes_then_withdraws_the_person_and_research_opt_outs_are_listed(
    service: FhirService, keys: FileKeyProvider
) -> None:
    """TREAT deny: withdrawn as a person, after the tokens that find the person; HRESCH: excluded from research."""
    link = RecordingLink()
    publisher = LinkagePublisher(service.engine, keys, link)
    sharing = service.create(patient(given="Ada")).stored.id
    research = service.create(patient(given="Grace", birth_date="1950-02-02")).stored.id
    publisher.drain()
    consent = service.create(opt_out_consent(sharing)).stored.id
    service.create(opt_out_consent(research, purpose="HRESCH"))
    publisher.drain()

    with service.engine.connect() as conn:
        assert sharing_opted_out(conn, sharing)
        assert not sharing_opted_out(conn, research)
    assert research_excluded_patient_keys(service.engine) == {research}
    paths = [path for path, _ in link.calls]
    assert paths[-2:] == ["/index/v1/publish", "/index/v1/withdraw"]
    assert link.withdrawn(person=True) == [link.published()[0]]

    service.update("Consent", consent, {**opt_out_consent(sharing), "id": consent, "status": "inactive"})
    publisher.drain()
    with service.engine.connect() as conn:
        assert not sharing_opted_out(conn, sharing)
    assert link.published()[-1] == link.published()[0], "opting back in publishes the same reference again"


def test_after_a_key_rotation_every_patient_is_republished_under_the_new_key(
    service: FhirService, keys: FileKeyProvider
) -> None:
    """Rotation and a full re-queue: the next pass sends every patient with the new key id."""
    link = RecordingLink()
    publisher = LinkagePublisher(service.engine, keys, link)
    for given in ("Ada", "Grace", "Hedy"):
        service.create(patient(given=given))
    publisher.drain()
    rotation = rotate_key_file(keys.path, LinkageKey.generate())
    with write_transaction(service.engine) as conn:
        assert enqueue_all_patients(conn) == 3
    assert publisher.drain().published == 3
    last = link.calls[-1][1]
    assert last["key_id"] == rotation.key_id != rotation.previous_key_id


def test_a_failed_publication_leaves_the_queue_as_it_was(service: FhirService, keys: FileKeyProvider) -> None:
    """The coordinator unreachable: the pass raises and the patient stays queued for the next one."""
    link = RecordingLink()
    publisher = LinkagePublisher(service.engine, keys, link)
    service.create(patient())
    link.fail = True
    with pytest.raises(InternalError):
        publisher.publish_pending()
    assert _queued(service) == 1
    link.fail = False
    assert publisher.drain().published == 1
