"""Stock ``fhirclient`` (SMART on FHIR, 4.x) against a real node process, over SQLite and PostgreSQL.

The library is used as shipped: configured through ``FHIRClient(settings=...)`` and its server's
``requests`` session headers (the bearer token, and If-Match / If-None-Exist where a test needs them),
and its models parse every answer strictly, so a response that is not valid R4 JSON fails the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

import pytest
from fhirclient.client import FHIRClient
from fhirclient.models.bundle import Bundle
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from fhirclient.server import FHIRNotFoundException, FHIRPermissionDeniedException

# fhirclient raises requests' HTTPError for statuses it has no class for (410, 412); the test catches it
# and sends no request with it (httpx stays the one client of our own code).
from requests import HTTPError  # noqa: TID251

from tests.e2e.conftest import (
    MRN_SYSTEM,
    RunningNode,
    observation_json,
    patient_json,
    post_with_httpx,
    transaction_json,
    unique,
)


def make_client(node: RunningNode, token: str | None, **headers: str) -> Any:
    """A stock FHIRClient whose session sends the bearer token (and any extra request headers)."""
    client = FHIRClient(settings={"app_id": "medfed-e2e", "api_base": node.fhir_base})
    if token is not None:
        client.server.session.headers["Authorization"] = f"Bearer {token}"
    client.server.session.headers.update(headers)
    return client


@pytest.fixture
def fhir(running_node: RunningNode) -> Iterator[Any]:
    """A FHIRClient with the admin token."""
    client = make_client(running_node, running_node.admin_token)
    yield client
    client.server.session.close()


def create_patient(server: Any, family: str, mrn: str | None = None) -> str:
    """Create a Patient with fhirclient and return its id."""
    created = Patient(patient_json(family, mrn)).create(server)
    assert created is not None
    resource_id: str = created["id"]
    return resource_id


def total(server: Any, struct: dict[str, str]) -> int:
    """The Bundle.total of a ``_count=0`` Patient search, which must be one page without entries."""
    # At most two pages: a next link on a _count=0 page would otherwise be followed for ever.
    pages = list(islice(Patient.where({**struct, "_count": "0"}).perform_iter(server), 2))
    assert len(pages) == 1
    assert not pages[0].entry
    value: int = pages[0].total
    return value


def test_capability_statement_is_read_without_a_token(running_node: RunningNode) -> None:
    """fhirclient reads and parses the CapabilityStatement with no token: R4 (4.0.1), JSON, $everything."""
    client = make_client(running_node, token=None)
    try:
        assert client.prepare() is True  # fetches /metadata; no SMART OAuth extension, so no OAuth flow
        statement = client.server.capabilityStatement
    finally:
        client.server.session.close()
    assert statement.fhirVersion == "4.0.1"
    assert "application/fhir+json" in statement.format
    patient = next(r for r in statement.rest[0].resource if r.type == "Patient")
    assert {i.code for i in patient.interaction} >= {"read", "create", "update", "delete", "search-type"}
    assert [o.name for o in patient.operation] == ["everything"]


def test_read_returns_the_created_resource(fhir: Any) -> None:
    """A Patient created by fhirclient reads back with its name, identifier and version 1."""
    family = unique("Read")
    pid = create_patient(fhir.server, family, mrn="R-1")
    read = Patient.read(pid, fhir.server)
    assert read.id == pid
    assert read.name[0].family == family
    assert (read.identifier[0].system, read.identifier[0].value) == (MRN_SYSTEM, "R-1")
    assert read.meta.versionId == "1"


def test_read_of_an_unknown_id_raises_not_found(fhir: Any) -> None:
    """Reading an id that never existed surfaces as fhirclient's FHIRNotFoundException (404, not-found)."""
    with pytest.raises(FHIRNotFoundException) as raised:
        Patient.read(unique("missing-"), fhir.server)
    assert raised.value.response.status_code == 404
    assert raised.value.response.json()["issue"][0]["code"] == "not-found"


def test_search_pages_through_every_page_to_the_last(fhir: Any) -> None:
    """25 matches at _count=10 come as pages of 10, 10 and 5 via next links; every resource exactly once."""
    family = unique("Page")
    created = {create_patient(fhir.server, family) for _ in range(25)}
    search = Patient.where({"family": family, "_count": "10"})
    pages = list(search.perform_iter(fhir.server))
    assert [len(page.entry) for page in pages] == [10, 10, 5]
    assert {page.total for page in pages} == {25}
    assert [link.relation for link in pages[-1].link] == ["self"]
    seen = [resource.id for resource in search.perform_resources_iter(fhir.server)]
    assert len(seen) == 25
    assert set(seen) == created


def test_count_zero_gives_the_total_in_one_page(fhir: Any) -> None:
    """A _count=0 search answers one Bundle with the total and no entries, and no next page to follow."""
    family = unique("Total")
    for _ in range(3):
        create_patient(fhir.server, family)
    assert total(fhir.server, {"family": family}) == 3
    assert total(fhir.server, {"family": unique("Nobody")}) == 0


def test_include_adds_the_referenced_patient(fhir: Any) -> None:
    """_include=Observation:subject returns the matching Observations plus their Patient, marked include."""
    pid = create_patient(fhir.server, unique("Include"))
    for value in (12.0, 14.0):
        assert Observation(observation_json(f"Patient/{pid}", value)).create(fhir.server) is not None
    search = Observation.where({"subject": f"Patient/{pid}"}).include("subject")
    assert "_include=Observation:subject" in search.construct()
    pages = list(search.perform_iter(fhir.server))
    assert len(pages) == 1
    found = [(e.search.mode, e.resource.resource_type) for e in pages[0].entry]
    assert found == [("match", "Observation"), ("match", "Observation"), ("include", "Patient")]
    assert pages[0].entry[2].resource.id == pid
    assert pages[0].total == 2


def test_create_accepts_fhir_json_from_the_client_and_plain_json(running_node: RunningNode, fhir: Any) -> None:
    """fhirclient posts application/fhir+json and gets 201 with Location; application/json is accepted too."""
    family = unique("Media")
    response = fhir.server.post_json("Patient", Patient(patient_json(family)).as_json())
    assert response.request.headers["Content-Type"] == "application/fhir+json"
    assert response.status_code == 201
    pid = response.json()["id"]
    assert response.headers["Location"] == f"{running_node.fhir_base}/Patient/{pid}/_history/1"
    assert response.headers["ETag"] == 'W/"1"'

    plain = post_with_httpx(running_node, patient_json(family), "application/json")
    assert plain.status_code == 201
    assert Patient.read(plain.json()["id"], fhir.server).name[0].family == family
    assert total(fhir.server, {"family": family}) == 2


def test_conditional_create_by_if_none_exist_header_returns_the_match(running_node: RunningNode, fhir: Any) -> None:
    """With If-None-Exist matching one Patient, a create answers 200 with that Patient and adds none."""
    mrn = unique("HDR-")
    pid = create_patient(fhir.server, unique("Cond"), mrn=mrn)
    conditional = make_client(
        running_node, running_node.admin_token, **{"If-None-Exist": f"identifier={MRN_SYSTEM}|{mrn}"}
    )
    try:
        again = conditional.server.post_json("Patient", patient_json(unique("Cond"), mrn=mrn))
        assert again.status_code == 200
        assert again.json()["id"] == pid
        fresh_mrn = unique("HDR-")
        conditional.server.session.headers["If-None-Exist"] = f"identifier={MRN_SYSTEM}|{fresh_mrn}"
        fresh = conditional.server.post_json("Patient", patient_json(unique("Cond"), mrn=fresh_mrn))
        assert fresh.status_code == 201
        assert fresh.json()["id"] != pid
    finally:
        conditional.server.session.close()
    assert total(fhir.server, {"identifier": f"{MRN_SYSTEM}|{mrn}"}) == 1


def test_conditional_create_by_search_in_the_url_returns_the_match(fhir: Any) -> None:
    """POST Patient?identifier=... answers 200 with the one match; with no match it creates (201)."""
    mrn = unique("URL-")
    pid = create_patient(fhir.server, unique("Cond"), mrn=mrn)
    again = fhir.server.post_json(f"Patient?identifier={MRN_SYSTEM}|{mrn}", patient_json(unique("Cond"), mrn=mrn))
    assert again.status_code == 200
    assert again.json()["id"] == pid
    fresh_mrn = unique("URL-")
    fresh = fhir.server.post_json(
        f"Patient?identifier={MRN_SYSTEM}|{fresh_mrn}", patient_json(unique("Cond"), mrn=fresh_mrn)
    )
    assert fresh.status_code == 201
    assert total(fhir.server, {"identifier": f"{MRN_SYSTEM}|{mrn}"}) == 1


def test_update_with_and_without_if_match(running_node: RunningNode, fhir: Any) -> None:
    """An update with the current If-Match or none succeeds; a stale If-Match answers 412 and changes nothing."""
    pid = create_patient(fhir.server, unique("Upd"))
    patient = Patient.read(pid, fhir.server)
    patient.gender = "other"
    matched = make_client(running_node, running_node.admin_token, **{"If-Match": 'W/"1"'})
    try:
        assert patient.update(matched.server)["meta"]["versionId"] == "2"
        patient.gender = "male"
        with pytest.raises(HTTPError) as raised:
            patient.update(matched.server)  # If-Match still names version 1
    finally:
        matched.server.session.close()
    assert raised.value.response is not None
    assert raised.value.response.status_code == 412
    assert raised.value.response.json()["issue"][0]["code"] == "conflict"
    assert Patient.read(pid, fhir.server).gender == "other"

    unconditional = patient.update(fhir.server)
    assert unconditional["meta"]["versionId"] == "3"
    assert Patient.read(pid, fhir.server).gender == "male"


def test_delete_then_read_is_gone(fhir: Any) -> None:
    """After fhirclient deletes a Patient, reading it raises an HTTP 410 error with issue code deleted."""
    pid = create_patient(fhir.server, unique("Del"))
    Patient.read(pid, fhir.server).delete()
    with pytest.raises(HTTPError) as raised:
        Patient.read(pid, fhir.server)
    assert raised.value.response is not None
    assert raised.value.response.status_code == 410
    assert raised.value.response.json()["issue"][0]["code"] == "deleted"


def test_transaction_bundle_creates_all_and_rewrites_references(fhir: Any) -> None:
    """A transaction Bundle posted by fhirclient creates every entry; urn:uuid references point at new ids."""
    family = unique("Tx")
    response = Bundle(transaction_json(family, observations=2)).create(fhir.server)
    result = Bundle(response)  # parses strictly as an R4 Bundle
    assert result.type == "transaction-response"
    assert [e.response.status for e in result.entry] == ["201 Created"] * 3
    pid = result.entry[0].response.location.split("/")[1]
    obs_id = result.entry[1].response.location.split("/")[1]
    assert Observation.read(obs_id, fhir.server).subject.reference == f"Patient/{pid}"
    assert Patient.read(pid, fhir.server).name[0].family == family


def test_everything_returns_the_compartment_across_pages(fhir: Any) -> None:
    """Patient/{id}/$everything at _count=2 pages through the Patient and its 3 Observations by next links."""
    response = Bundle(transaction_json(unique("Every"), observations=3)).create(fhir.server)
    pid = response["entry"][0]["response"]["location"].split("/")[1]
    url: str | None = f"Patient/{pid}/$everything?_count=2"
    kinds: list[tuple[str, str]] = []
    pages = 0
    while url is not None:
        page = Bundle.read_from(url, fhir.server)
        assert page.total == 4
        kinds += [(e.resource.resource_type, e.resource.id) for e in page.entry]
        pages += 1
        url = next((link.url for link in page.link if link.relation == "next"), None)
    assert pages == 2
    assert sorted(kind for kind, _ in kinds) == ["Observation"] * 3 + ["Patient"]
    assert ("Patient", pid) in kinds
    assert len(set(kinds)) == 4


def test_clinician_token_reads_but_cannot_write(running_node: RunningNode, fhir: Any) -> None:
    """With a clinician token fhirclient reads, and a create raises FHIRPermissionDeniedException (403)."""
    pid = create_patient(fhir.server, unique("Role"))
    clinician = make_client(running_node, running_node.clinician_token)
    try:
        assert Patient.read(pid, clinician.server).id == pid
        with pytest.raises(FHIRPermissionDeniedException) as raised:
            Patient(patient_json(unique("Role"))).create(clinician.server)
    finally:
        clinician.server.session.close()
    assert raised.value.response.status_code == 403
