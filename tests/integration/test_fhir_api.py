"""The node's FHIR API over SQLite and PostgreSQL: CRUD, versions, search, bundles, access, audit."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from node.store.audit import read_events
from tests.integration.conftest import NodeClient

FHIR = "application/fhir+json"


def patient(family: str = "Smith", given: str = "Anna", mrn: str = "MRN-1", **extra: Any) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:test:mrn", "value": mrn}],
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": "1980-05-17",
        **extra,
    }


def observation(
    patient_id: str, code: str = "718-7", when: str = "2024-03-01T10:00:00Z", value: float = 13.2
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "laboratory",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {
            "value": value,
            "unit": "g/dL",
            "system": "http://unitsofmeasure.org",
            "code": "g/dL",
        },
    }


def create(node: NodeClient, resource: dict[str, Any]) -> dict[str, Any]:
    response = node.client.post(f"/fhir/{resource['resourceType']}", json=resource, headers=node.admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_metadata_is_public_and_says_r4(node: NodeClient) -> None:
    """The CapabilityStatement needs no token and declares FHIR 4.0.1 and JSON."""
    response = node.client.get("/fhir/metadata")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR)
    body = response.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    observation_entry = next(r for r in body["rest"][0]["resource"] if r["type"] == "Observation")
    names = {p["name"] for p in observation_entry["searchParam"]}
    assert {"patient", "subject", "code", "category", "date", "status", "_id"} <= names


def test_everything_else_needs_a_token(node: NodeClient) -> None:
    """Without a bearer token every FHIR route answers 401 with an OperationOutcome; healthz is public."""
    assert node.client.get("/healthz").status_code == 200
    for method, path in [
        ("GET", "/fhir/Patient"),
        ("GET", "/fhir/Patient/x"),
        ("POST", "/fhir/Patient"),
        ("POST", "/fhir"),
    ]:
        response = node.client.request(method, path, json={})
        assert response.status_code == 401
        assert response.json()["resourceType"] == "OperationOutcome"
        assert response.headers["www-authenticate"] == "Bearer"
    bad = node.client.get("/fhir/Patient", headers={"Authorization": "Bearer mfn_not-a-real-token"})
    assert bad.status_code == 401


def test_clinician_reads_but_cannot_write(node: NodeClient) -> None:
    """A clinician token searches and reads; writes answer 403."""
    created = create(node, patient())
    assert node.client.get(f"/fhir/Patient/{created['id']}", headers=node.clinician).status_code == 200
    refused = node.client.post("/fhir/Patient", json=patient(), headers=node.clinician)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"


def test_create_read_update_delete_history(node: NodeClient) -> None:
    """Create: 201, Location, ETag; If-Match guards updates (412); delete: 410; history keeps all."""
    response = node.client.post("/fhir/Patient", json=patient(), headers=node.admin)
    assert response.status_code == 201
    created = response.json()
    pid = created["id"]
    assert response.headers["etag"] == 'W/"1"'
    assert urlsplit(response.headers["location"]).path == f"/fhir/Patient/{pid}/_history/1"
    assert created["meta"]["versionId"] == "1"

    read = node.client.get(f"/fhir/Patient/{pid}", headers=node.clinician)
    assert read.json()["name"][0]["family"] == "Smith"
    assert read.headers["etag"] == 'W/"1"'

    changed = {**created, "gender": "other"}
    stale = node.client.put(f"/fhir/Patient/{pid}", json=changed, headers={**node.admin, "If-Match": 'W/"7"'})
    assert stale.status_code == 412
    ok = node.client.put(f"/fhir/Patient/{pid}", json=changed, headers={**node.admin, "If-Match": 'W/"1"'})
    assert ok.status_code == 200
    assert ok.headers["etag"] == 'W/"2"'
    again = node.client.put(f"/fhir/Patient/{pid}", json={**changed, "gender": "male"}, headers=node.admin)
    assert again.status_code == 200
    assert again.json()["meta"]["versionId"] == "3"

    assert node.client.get(f"/fhir/Patient/{pid}/_history/1", headers=node.clinician).json()["gender"] == "female"
    assert node.client.delete(f"/fhir/Patient/{pid}", headers=node.admin).status_code == 204
    gone = node.client.get(f"/fhir/Patient/{pid}", headers=node.clinician)
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    history = node.client.get(f"/fhir/Patient/{pid}/_history", headers=node.clinician).json()
    assert history["total"] == 4
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "PUT", "PUT"]
    search = node.client.get("/fhir/Patient", params={"_id": pid}, headers=node.clinician).json()
    assert search["total"] == 0


def test_update_creates_with_client_id(node: NodeClient) -> None:
    """PUT to an unused id creates the resource with that id (201)."""
    response = node.client.put("/fhir/Patient/p-chosen", json={**patient(), "id": "p-chosen"}, headers=node.admin)
    assert response.status_code == 201
    assert node.client.get("/fhir/Patient/p-chosen", headers=node.clinician).json()["id"] == "p-chosen"


def test_read_unknown_is_404(node: NodeClient) -> None:
    """Reading an id that never existed answers 404 with an OperationOutcome."""
    response = node.client.get("/fhir/Patient/nope", headers=node.clinician)
    assert response.status_code == 404
    assert response.json()["issue"][0]["code"] == "not-found"


def test_conditional_create_both_forms(node: NodeClient) -> None:
    """If-None-Exist and POST Type?identifier= both return the existing match (200) instead of a duplicate."""
    first = create(node, patient(mrn="COND-1"))
    header = node.client.post(
        "/fhir/Patient",
        json=patient(mrn="COND-1"),
        headers={**node.admin, "If-None-Exist": "identifier=urn:test:mrn|COND-1"},
    )
    assert header.status_code == 200
    assert header.json()["id"] == first["id"]
    url_form = node.client.post(
        "/fhir/Patient?identifier=urn:test:mrn|COND-1", json=patient(mrn="COND-1"), headers=node.admin
    )
    assert url_form.status_code == 200
    assert url_form.json()["id"] == first["id"]
    fresh = node.client.post(
        "/fhir/Patient?identifier=urn:test:mrn|COND-2", json=patient(mrn="COND-2"), headers=node.admin
    )
    assert fresh.status_code == 201
    create(node, patient(mrn="COND-2"))  # now two resources carry COND-2
    ambiguous = node.client.post(
        "/fhir/Patient?identifier=urn:test:mrn|COND-2", json=patient(mrn="COND-2"), headers=node.admin
    )
    assert ambiguous.status_code == 412


def test_search_token_string_date_reference(node: NodeClient) -> None:
    """Search by token, string (prefix, case- and accent-folded), date prefixes and reference."""
    anna = create(node, patient(family="Müller", given="Anna", mrn="A1"))
    bob = create(node, {**patient(family="Miller", given="Bob", mrn="B1"), "gender": "male", "birthDate": "1990"})
    for when, code in [
        ("2024-01-10T08:00:00Z", "718-7"),
        ("2024-02-10T08:00:00Z", "718-7"),
        ("2024-02-11", "2345-7"),
    ]:
        create(node, observation(anna["id"], code=code, when=when))
    create(node, observation(bob["id"], code="718-7", when="2023-12-31T23:00:00+02:00"))

    def total(resource_type: str, **params: str) -> int:
        response = node.client.get(f"/fhir/{resource_type}", params={**params, "_count": "0"}, headers=node.clinician)
        assert response.status_code == 200, response.text
        value: int = response.json()["total"]
        return value

    assert total("Patient", family="muller") == 1
    assert total("Patient", name="MÜL") == 1
    assert total("Patient", name="m") == 2
    assert total("Patient", **{"family:exact": "Müller"}) == 1
    assert total("Patient", **{"family:exact": "müller"}) == 0
    assert total("Patient", **{"name:contains": "ille"}) == 1
    assert total("Patient", gender="male") == 1
    assert total("Patient", identifier="urn:test:mrn|A1") == 1
    assert total("Patient", identifier="A1,B1") == 2
    assert total("Patient", birthdate="1980") == 1
    assert total("Patient", birthdate="ge1985-01-01") == 1
    assert total("Observation", code="http://loinc.org|718-7") == 3
    assert total("Observation", code="718-7", patient=anna["id"]) == 2
    assert total("Observation", subject=f"Patient/{anna['id']}") == 3
    assert total("Observation", **{"subject:Patient": anna["id"]}) == 3
    assert total("Observation", date="2024-02") == 2
    assert total("Observation", date="ge2024-02-11") == 1
    assert total("Observation", date="lt2024-01-01") == 1  # 2023-12-31T21:00Z
    assert total("Observation", date="2023-12-31") == 1
    assert total("Observation", date="sa2024-01-31") == 2
    assert total("Observation", date="eb2024-01-31") == 2
    assert total("Observation", code="718-7", date="ge2024-01-01", patient=anna["id"]) == 2
    assert total("Observation", code="718-7", date="ge2024-02-01") == 1
    assert total("Observation", category="laboratory", status="final") == 4
    assert total("Observation", **{"code:not": "718-7"}) == 1
    assert total("Observation", **{"code:missing": "false"}) == 4
    assert total("Observation", _lastUpdated="ge2000-01-01") == 4
    assert total("Patient", _unknown_param="x", _totalMethod="count") == 2


def test_search_paging_sort_and_include(node: NodeClient) -> None:
    """Paging follows absolute next links to the end; _sort orders; _include/_revinclude add resources."""
    owner = create(node, patient(mrn="P-PAGE"))
    days = [f"2024-03-{d:02d}" for d in range(1, 12)]
    for day in reversed(days):
        create(node, observation(owner["id"], when=day))
    url: str | None = "/fhir/Observation?_count=4&_sort=date&patient=" + owner["id"]
    seen: list[str] = []
    pages = 0
    while url:
        response = node.client.get(url, headers=node.clinician)
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["total"] == 11
        seen += [e["resource"]["effectiveDateTime"] for e in bundle.get("entry", [])]
        pages += 1
        nxt = [link["url"] for link in bundle["link"] if link["relation"] == "next"]
        url = nxt[0] if nxt else None
        if url:
            assert url.startswith("http://testserver/fhir/Observation?")
    assert pages == 3
    assert seen == days
    newest = node.client.get(
        "/fhir/Observation", params={"_sort": "-date", "_count": "1"}, headers=node.clinician
    ).json()
    assert newest["entry"][0]["resource"]["effectiveDateTime"] == days[-1]

    included = node.client.get(
        "/fhir/Observation", params={"_include": "Observation:patient", "_count": "2"}, headers=node.clinician
    ).json()
    modes = [e["search"]["mode"] for e in included["entry"]]
    assert modes == ["match", "match", "include"]
    assert included["entry"][2]["resource"]["id"] == owner["id"]

    rev = node.client.get(
        "/fhir/Patient",
        params={"_id": owner["id"], "_revinclude": "Observation:patient"},
        headers=node.clinician,
    ).json()
    assert rev["total"] == 1
    assert len(rev["entry"]) == 12


def test_search_by_post(node: NodeClient) -> None:
    """POST _search with a form body finds the same as GET."""
    create(node, patient(mrn="POST-1"))
    response = node.client.post(
        "/fhir/Patient/_search", data={"identifier": "urn:test:mrn|POST-1"}, headers=node.clinician
    )
    assert response.status_code == 200
    assert response.json()["total"] == 1


def test_transaction_rewrites_urns_and_everything_returns_compartment(node: NodeClient) -> None:
    """Transaction urn:uuid references point at the new ids; $everything returns the compartment."""
    pid_urn = "urn:uuid:11111111-1111-4111-8111-111111111111"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": pid_urn,
                "resource": patient(mrn="TX-1"),
                "request": {"method": "POST", "url": "Patient"},
            },
            *[
                {
                    "fullUrl": f"urn:uuid:22222222-2222-4222-8222-22222222222{i}",
                    "resource": {**observation("x"), "subject": {"reference": pid_urn}},
                    "request": {"method": "POST", "url": "Observation"},
                }
                for i in range(3)
            ],
        ],
    }
    response = node.client.post("/fhir", json=bundle, headers=node.admin)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    assert [e["response"]["status"] for e in result["entry"]] == ["201 Created"] * 4
    pid = result["entry"][0]["response"]["location"].split("/")[1]
    obs_id = result["entry"][1]["response"]["location"].split("/")[1]
    obs = node.client.get(f"/fhir/Observation/{obs_id}", headers=node.clinician).json()
    assert obs["subject"]["reference"] == f"Patient/{pid}"
    everything = node.client.get(f"/fhir/Patient/{pid}/$everything", headers=node.clinician).json()
    assert everything["total"] == 4
    assert sorted(e["resource"]["resourceType"] for e in everything["entry"]) == ["Observation"] * 3 + ["Patient"]


def test_batch_reports_each_entry(node: NodeClient) -> None:
    """A batch runs entries independently: a bad entry fails alone with its status."""
    bundle = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [
            {"resource": patient(mrn="BATCH-1"), "request": {"method": "POST", "url": "Patient"}},
            {
                "resource": {"resourceType": "Patient", "gender": "not-a-gender"},
                "request": {"method": "POST", "url": "Patient"},
            },
        ],
    }
    response = node.client.post("/fhir", json=bundle, headers=node.admin)
    assert response.status_code == 200
    statuses = [e["response"]["status"] for e in response.json()["entry"]]
    assert statuses[0] == "201 Created"
    assert statuses[1].startswith("422")
    assert node.client.get("/fhir/Patient", params={"_count": "0"}, headers=node.clinician).json()["total"] == 1


def test_reads_are_audited(node: NodeClient) -> None:
    """Every call with a token leaves an audit row with the token id, action, resource and status."""
    created = create(node, patient())
    node.client.get(f"/fhir/Patient/{created['id']}", headers=node.clinician)
    node.client.get("/fhir/Patient/missing", headers=node.clinician)
    events = read_events(node.engine)
    actions = [(e.role, e.action, e.resource_type, e.status) for e in events[:3]]
    assert actions == [
        ("clinician", "fhir.read", "Patient", 404),
        ("clinician", "fhir.read", "Patient", 200),
        ("admin", "fhir.create", "Patient", 201),
    ]
    assert events[1].resource_id == created["id"]


@pytest.mark.parametrize(
    "content_type", ["application/fhir+json", "application/json", "application/fhir+json; charset=utf-8"]
)
def test_both_json_media_types_are_accepted(node: NodeClient, content_type: str) -> None:
    """Creates accept application/fhir+json and application/json."""
    import orjson

    response = node.client.post(
        "/fhir/Patient", content=orjson.dumps(patient()), headers={**node.admin, "Content-Type": content_type}
    )
    assert response.status_code == 201


def test_code_search_without_sort_pages_newest_first(node: NodeClient) -> None:
    """A search by one system|code, unsorted, returns the newest first and pages through every match once."""
    owner = create(node, patient(mrn="NEWEST"))
    days = [f"2023-06-{d:02d}" for d in (5, 1, 9, 3, 7)]
    for day in days:
        create(node, observation(owner["id"], code="4548-4", when=day))
    url: str | None = "/fhir/Observation?code=http://loinc.org|4548-4&_count=2"
    seen: list[str] = []
    while url:
        bundle = node.client.get(url, headers=node.clinician).json()
        seen += [e["resource"]["effectiveDateTime"] for e in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert seen == sorted(days, reverse=True)


def test_transaction_runs_deletes_posts_puts_then_gets(node: NodeClient) -> None:
    """Inside a transaction the order is DELETE, POST, PUT, GET: a GET sees the PUT before it in the Bundle."""
    kept = create(node, patient(mrn="ORDER-1"))
    doomed = create(node, patient(mrn="ORDER-2"))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"request": {"method": "GET", "url": f"Patient/{kept['id']}"}},
            {"resource": {**kept, "gender": "other"}, "request": {"method": "PUT", "url": f"Patient/{kept['id']}"}},
            {"request": {"method": "DELETE", "url": f"Patient/{doomed['id']}"}},
            {"resource": patient(mrn="ORDER-3"), "request": {"method": "POST", "url": "Patient"}},
        ],
    }
    response = node.client.post("/fhir", json=bundle, headers=node.admin)
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["resource"]["gender"] == "other"
    assert entries[0]["resource"]["meta"]["versionId"] == "2"
    assert [e["response"]["status"] for e in entries[1:]] == ["200 OK", "204 No Content", "201 Created"]
    assert node.client.get(f"/fhir/Patient/{doomed['id']}", headers=node.clinician).status_code == 410
