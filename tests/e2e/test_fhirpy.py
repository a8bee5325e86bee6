"""Stock ``fhirpy`` (beda.software, 2.x) against a real node process, over SQLite and PostgreSQL.

The library is used as shipped: ``SyncFHIRClient(url, authorization=..., extra_headers=...)`` and its
resources and search sets. fhirpy sends bodies with ``requests``' ``json=``, that is as
``application/json``; a create as ``application/fhir+json`` goes through httpx.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ForbiddenError, MultipleResourcesFound, ResourceNotFound

from tests.e2e.conftest import (
    MRN_SYSTEM,
    RunningNode,
    observation_json,
    patient_json,
    post_with_httpx,
    transaction_json,
    unique,
)


def make_client(node: RunningNode, token: str | None, **headers: str) -> SyncFHIRClient:
    """A stock SyncFHIRClient with the bearer token (and any extra request headers)."""
    return SyncFHIRClient(
        node.fhir_base,
        authorization=f"Bearer {token}" if token is not None else None,
        extra_headers=headers or None,
    )


@pytest.fixture
def fhir(running_node: RunningNode) -> SyncFHIRClient:
    """A SyncFHIRClient with the admin token."""
    return make_client(running_node, running_node.admin_token)


def create_patient(client: SyncFHIRClient, family: str, mrn: str | None = None) -> Any:
    """Create a Patient with fhirpy (``resource.save()``) and return it, now with id and meta."""
    patient = client.resource("Patient", **patient_json(family, mrn))
    patient.save()
    assert patient.id
    return patient


def issue_code(error: Exception) -> str:
    """The first issue code of the OperationOutcome that fhirpy put in an exception's message."""
    code: str = json.loads(str(error))["issue"][0]["code"]
    return code


def test_capability_statement_is_read_without_a_token(running_node: RunningNode) -> None:
    """fhirpy GETs /metadata with no token: a CapabilityStatement for R4 (4.0.1) that offers $everything."""
    statement = make_client(running_node, token=None).execute("metadata", method="get")
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert patient["conditionalCreate"] is True
    assert [o["name"] for o in patient["operation"]] == ["everything"]


def test_read_returns_the_created_resource(fhir: SyncFHIRClient) -> None:
    """A Patient saved by fhirpy reads back (by reference and by _id search) with its name and version 1."""
    family = unique("Read")
    created = create_patient(fhir, family, mrn="R-1")
    read = fhir.reference("Patient", created.id).to_resource()
    assert read["name"][0]["family"] == family
    assert read["identifier"][0] == {"system": MRN_SYSTEM, "value": "R-1"}
    assert read["meta"]["versionId"] == "1"
    assert fhir.resources("Patient").search(_id=created.id).get().id == created.id


def test_read_of_an_unknown_id_raises_not_found(fhir: SyncFHIRClient) -> None:
    """Reading an id that never existed raises fhirpy's ResourceNotFound carrying issue code not-found."""
    with pytest.raises(ResourceNotFound) as raised:
        fhir.reference("Patient", unique("missing-")).to_resource()
    assert issue_code(raised.value) == "not-found"


def test_search_pages_through_every_page_to_the_last(fhir: SyncFHIRClient) -> None:
    """25 matches at _count=10: the first page holds 10 and a next link; fetch_all() follows to all 25."""
    family = unique("Page")
    created = {create_patient(fhir, family).id for _ in range(25)}
    search = fhir.resources("Patient").search(family=family).limit(10)
    first = search.fetch_raw()
    assert first["total"] == 25
    assert len(first["entry"]) == 10
    assert any(link["relation"] == "next" for link in first["link"])
    every = [patient.id for patient in search.fetch_all()]
    assert len(every) == 25
    assert set(every) == created


def test_count_gives_the_total(fhir: SyncFHIRClient) -> None:
    """fhirpy's count() (a _count=0 search) reads Bundle.total: 3 for three matches, 0 for none."""
    family = unique("Total")
    for _ in range(3):
        create_patient(fhir, family)
    assert fhir.resources("Patient").search(family=family).count() == 3
    assert fhir.resources("Patient").search(family=unique("Nobody")).count() == 0


def test_include_adds_the_referenced_patient(fhir: SyncFHIRClient) -> None:
    """_include=Observation:subject adds the Patient (mode include) after the two matching Observations."""
    patient = create_patient(fhir, unique("Include"))
    for value in (12.0, 14.0):
        fhir.resource("Observation", **observation_json(f"Patient/{patient.id}", value)).save()
    search = fhir.resources("Observation").search(subject=f"Patient/{patient.id}").include("Observation", "subject")
    bundle = search.fetch_raw()
    found = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"]]
    assert found == [("match", "Observation"), ("match", "Observation"), ("include", "Patient")]
    assert bundle["entry"][2]["resource"]["id"] == patient.id
    assert [o["subject"]["reference"] for o in search.fetch()] == [f"Patient/{patient.id}"] * 2


def test_create_accepts_plain_json_from_the_client_and_fhir_json(
    running_node: RunningNode, fhir: SyncFHIRClient
) -> None:
    """A create by fhirpy (application/json) and one with application/fhir+json are both stored."""
    family = unique("Media")
    by_fhirpy = create_patient(fhir, family)
    assert by_fhirpy["meta"]["versionId"] == "1"
    typed = post_with_httpx(running_node, patient_json(family), "application/fhir+json")
    assert typed.status_code == 201
    assert typed.headers["content-type"].startswith("application/fhir+json")
    assert fhir.reference("Patient", typed.json()["id"]).to_resource()["name"][0]["family"] == family
    assert fhir.resources("Patient").search(family=family).count() == 2


def test_conditional_create_by_search_in_the_url(fhir: SyncFHIRClient) -> None:
    """get_or_create and resource.create(identifier=...) POST Patient?identifier=...: one match is reused."""
    mrn = unique("URL-")
    conditional = fhir.resources("Patient").search(identifier=f"{MRN_SYSTEM}|{mrn}")
    first, created = conditional.get_or_create(fhir.resource("Patient", **patient_json(unique("Cond"), mrn)))
    assert created is True
    again, created_again = conditional.get_or_create(fhir.resource("Patient", **patient_json(unique("Cond"), mrn)))
    assert created_again is False
    assert again.id == first.id
    resource = fhir.resource("Patient", **patient_json(unique("Cond"), mrn))
    resource.create(identifier=f"{MRN_SYSTEM}|{mrn}")  # type: ignore[no-untyped-call]  # fhirpy 2.3: unannotated
    assert resource.id == first.id
    assert conditional.count() == 1


def test_conditional_create_by_if_none_exist_header(running_node: RunningNode, fhir: SyncFHIRClient) -> None:
    """With an If-None-Exist header that matches one Patient, a fhirpy save returns that Patient, adds none."""
    mrn = unique("HDR-")
    existing = create_patient(fhir, unique("Cond"), mrn)
    conditional = make_client(
        running_node, running_node.admin_token, **{"If-None-Exist": f"identifier={MRN_SYSTEM}|{mrn}"}
    )
    # client.create()/update() are for typed resource classes; a SyncFHIRResource saves through its client.
    returned = conditional.resource("Patient", **patient_json(unique("Cond"), mrn))
    returned.save()
    assert returned.id == existing.id
    assert returned["name"][0]["family"] == existing["name"][0]["family"]  # the stored one, not the posted one
    assert returned["meta"]["versionId"] == "1"
    assert fhir.resources("Patient").search(identifier=f"{MRN_SYSTEM}|{mrn}").count() == 1


def test_update_with_and_without_if_match(running_node: RunningNode, fhir: SyncFHIRClient) -> None:
    """An update with the current If-Match or none succeeds; a stale If-Match answers 412 and changes nothing."""
    patient = create_patient(fhir, unique("Upd"))
    patient["gender"] = "other"
    patient.save()  # no If-Match
    assert patient["meta"]["versionId"] == "2"

    matched = make_client(running_node, running_node.admin_token, **{"If-Match": 'W/"2"'})
    guarded = matched.resource("Patient", **{**patient.serialize(), "gender": "male"})
    guarded.save()
    assert guarded["meta"]["versionId"] == "3"
    guarded["gender"] = "unknown"
    with pytest.raises(MultipleResourcesFound) as raised:  # fhirpy's class for every 412
        guarded.save()  # If-Match still names version 2
    assert issue_code(raised.value) == "conflict"
    current = fhir.reference("Patient", patient.id).to_resource()
    assert (current["gender"], current["meta"]["versionId"]) == ("male", "3")


def test_delete_then_read_is_gone(fhir: SyncFHIRClient) -> None:
    """After fhirpy deletes a Patient, reading it raises ResourceNotFound for a 410 (issue code deleted)."""
    patient = create_patient(fhir, unique("Del"))
    patient.delete()
    with pytest.raises(ResourceNotFound) as raised:
        fhir.reference("Patient", patient.id).to_resource()
    assert issue_code(raised.value) == "deleted"
    assert fhir.resources("Patient").search(_id=patient.id).count() == 0


def test_transaction_bundle_creates_all_and_rewrites_references(fhir: SyncFHIRClient) -> None:
    """A transaction Bundle posted with execute("/") creates every entry; urn:uuid references get new ids."""
    family = unique("Tx")
    result = fhir.execute("/", method="post", data=transaction_json(family, observations=2))
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created"] * 3
    pid = result["entry"][0]["response"]["location"].split("/")[1]
    observations = fhir.resources("Observation").search(subject=f"Patient/{pid}").fetch_all()
    assert len(observations) == 2
    assert fhir.reference("Patient", pid).to_resource()["name"][0]["family"] == family


def test_everything_returns_the_compartment(fhir: SyncFHIRClient) -> None:
    """Patient/{id}/$everything by fhirpy returns the Patient and its 3 Observations, total 4."""
    result = fhir.execute("/", method="post", data=transaction_json(unique("Every"), observations=3))
    pid = result["entry"][0]["response"]["location"].split("/")[1]
    everything = fhir.reference("Patient", pid).execute("$everything", method="get")
    assert everything["type"] == "searchset"
    assert everything["total"] == 4
    kinds = sorted(e["resource"]["resourceType"] for e in everything["entry"])
    assert kinds == ["Observation"] * 3 + ["Patient"]
    patient = fhir.reference("Patient", pid).to_resource()
    assert patient.execute("$everything", method="get", params={"_count": 1})["entry"][0]["resource"]["id"] == pid


def test_clinician_token_reads_but_cannot_write(running_node: RunningNode, fhir: SyncFHIRClient) -> None:
    """With a clinician token fhirpy reads, and a save raises ForbiddenError (403, issue code forbidden)."""
    patient = create_patient(fhir, unique("Role"))
    clinician = make_client(running_node, running_node.clinician_token)
    assert clinician.reference("Patient", patient.id).to_resource().id == patient.id
    with pytest.raises(ForbiddenError) as raised:
        clinician.resource("Patient", **patient_json(unique("Role"))).save()
    assert issue_code(raised.value) == "forbidden"
