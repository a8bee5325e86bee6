"""The patient index's routes, in process, on SQLite and PostgreSQL: publish, withdraw, lookup, limits, audit.

Requests are signed as enrolled nodes sign them (``X-Medfed-*`` headers over the exact body) and sent
over Starlette's TestClient with an https base URL (the index routes answer over TLS only).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from common.crypto import SealingKey, SigningKey, sign_request
from common.errors import CATALOG, ErrorCode
from common.linkage import Demographics, LinkageKey, query_tokens, tokens_for
from coordinator.index.limits import TokenBucketLimiter
from coordinator.store import index as index_store
from coordinator.store.nodes import register_node
from tests.integration.coordinator.conftest import CoordinatorClient, make_coordinator_client

KEY = LinkageKey(bytes(range(32)))
ALICE = Demographics(
    given="Alice",
    family="Zimmerman",
    birth_date="1972-03-09",
    postcode="2602",
    street_number="4",
    street="Limestone Avenue",
    locality="Ainslie",
    state="ACT",
)
BOB = Demographics(given="Robert", family="Quigley", birth_date="1949-12-30", postcode="3056", locality="Brunswick")


@dataclass
class SignedNode:
    """An enrolled node that signs its requests to the coordinator under test."""

    node_id: str
    key: SigningKey
    client: TestClient

    def post(self, path: str, body: dict[str, Any]) -> Any:
        content = orjson.dumps(body)
        headers = sign_request(self.key, key_id=self.node_id, method="POST", path_and_query=path, body=content)
        return self.client.post(path, content=content, headers={**headers, "Content-Type": "application/json"})

    def publish(self, ref: str, demographics: Demographics) -> Any:
        tokens = [{"variant": t.variant, "value": t.value_hex} for t in tokens_for(demographics, KEY)]
        return self.post("/index/v1/publish", {"key_id": KEY.key_id, "records": [{"ref": ref, "tokens": tokens}]})

    def lookup(self, demographics: Demographics) -> list[tuple[str, str, str]]:
        tokens = [{"variant": t.variant, "value": t.value_hex} for t in query_tokens(demographics, KEY)]
        response = self.post("/index/v1/lookup", {"tokens": tokens})
        assert response.status_code == 200, response.text
        return [(hit["node"], hit["ref"], hit["decision"]) for hit in response.json()["hits"]]


@dataclass
class Index:
    """The coordinator app and three enrolled nodes."""

    coordinator: CoordinatorClient
    app: FastAPI
    a: SignedNode
    b: SignedNode
    c: SignedNode


def _node(coordinator: CoordinatorClient, client: TestClient, name: str) -> SignedNode:
    key = SigningKey.generate()
    record = register_node(
        coordinator.engine,
        name=name,
        public_key=key.public_key().to_text(),
        seal_public_key=SealingKey.generate().public_key().to_text(),
    )
    return SignedNode(record.id, key, client)


@pytest.fixture
def index(coordinator_database_url: str, tmp_path: Path) -> Iterator[Index]:
    """A coordinator with three registered nodes, its lookup limit out of the way."""
    made = make_coordinator_client(coordinator_database_url, tmp_path)
    app = cast(FastAPI, made.client.app)
    with TestClient(app, base_url="https://testserver") as client:
        app.state.index_limiter = TokenBucketLimiter(rate_per_s=1e6, burst=1e6)
        sites = [_node(made, client, name) for name in ("Site A", "Site B", "Site C")]
        yield Index(made, app, *sites)
    made.engine.dispose()


def test_a_lookup_returns_node_reference_and_decision_of_other_nodes_only(index: Index) -> None:
    """The answer is (node, ref, MATCH) for B's record; A's own record is never returned to A."""
    assert index.a.publish("ref-alice-at-a", ALICE).status_code == 200
    assert index.b.publish("ref-alice-at-b", replace(ALICE, street_number="40", street="Other Street")).json() == {
        "stored": 1,
        "suppressed": 0,
    }

    response = index.a.post(
        "/index/v1/lookup", {"tokens": [{"variant": t.variant, "value": t.value_hex} for t in query_tokens(ALICE, KEY)]}
    )

    assert response.json() == {"hits": [{"node": index.b.node_id, "ref": "ref-alice-at-b", "decision": "MATCH"}]}
    assert index.c.lookup(BOB) == []


def test_the_index_stores_tokens_rekeyed_with_the_coordinators_secret(index: Index) -> None:
    """No stored token equals a published one, and the stored rows name only the node and its reference."""
    index.a.publish("ref-alice-at-a", ALICE)
    published = {bytes.fromhex(t.value_hex) for t in tokens_for(ALICE, KEY)}
    with index.coordinator.engine.connect() as conn:
        stored = {bytes(v) for v in conn.execute(sa.select(index_store.TOKEN.c.token)).scalars()}
        columns = {column["name"] for column in sa.inspect(conn).get_columns("index_record")}
    assert len(stored) == len(published)
    assert not stored & published
    assert columns == {"id", "node_id", "record_ref", "cluster_id", "key_id", "updated_at"}


def test_publishing_a_reference_again_replaces_its_tokens(index: Index) -> None:
    """After B republishes its reference with Bob's demographics, Alice is no longer found there."""
    index.b.publish("ref-one-1", ALICE)
    index.b.publish("ref-one-1", BOB)
    assert index.a.lookup(ALICE) == []
    assert index.a.lookup(BOB) == [(index.b.node_id, "ref-one-1", "MATCH")]


def test_a_withdrawn_reference_is_no_longer_found(index: Index) -> None:
    """Withdraw removes the record (and answers how many went)."""
    index.b.publish("ref-one-1", ALICE)
    assert index.b.post("/index/v1/withdraw", {"refs": ["ref-one-1", "ref-unknown"]}).json() == {"withdrawn": 1}
    assert index.a.lookup(ALICE) == []


def test_records_that_share_a_strong_token_form_one_person_and_a_cluster_mate_is_possible(index: Index) -> None:
    """C's record (married name, moved) shares B's national id and birth date: A, reaching B, gets C as POSSIBLE."""
    index.b.publish("ref-b-000", replace(ALICE, national_id="7703914"))
    married = Demographics(
        given="Ally",
        family="Brown",
        birth_date=ALICE.birth_date,
        postcode="6000",
        locality="Perth",
        national_id="7703914",
    )
    index.c.publish("ref-c-000", married)
    with index.coordinator.engine.connect() as conn:
        clusters = set(conn.execute(sa.select(index_store.RECORD.c.cluster_id)).scalars())
    assert len(clusters) == 1

    assert index.a.lookup(ALICE) == [
        (index.b.node_id, "ref-b-000", "MATCH"),
        (index.c.node_id, "ref-c-000", "POSSIBLE"),
    ]


def test_a_person_opt_out_removes_every_record_of_the_person_and_keeps_new_ones_out(index: Index) -> None:
    """B withdraws as a person: C's linked record goes too, and C's later publication is suppressed."""
    index.b.publish("ref-b-000", ALICE)
    index.c.publish("ref-c-000", replace(ALICE, street_number="7"))
    assert index.b.post("/index/v1/withdraw", {"refs": ["ref-b-000"], "person": True}).json() == {"withdrawn": 2}
    assert index.a.lookup(ALICE) == []
    assert index.c.publish("ref-c2-00", replace(ALICE, street_number="8")).json() == {"stored": 0, "suppressed": 1}
    assert index.a.lookup(ALICE) == []
    assert index.b.publish("ref-b-000", ALICE).json() == {"stored": 1, "suppressed": 0}, "opting back in lifts it"
    assert index.a.lookup(ALICE) == [(index.b.node_id, "ref-b-000", "MATCH")]


def test_a_token_of_an_unknown_variant_is_refused(index: Index) -> None:
    """A node on another recipe version gets a 400, and nothing is stored."""
    response = index.a.post(
        "/index/v1/publish",
        {
            "key_id": KEY.key_id,
            "records": [{"ref": "ref-x-123", "tokens": [{"variant": "shoe_size", "value": "0" * 64}]}],
        },
    )
    assert response.status_code == 400
    with index.coordinator.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(index_store.RECORD)).scalar_one() == 0


def test_unsigned_index_requests_are_refused(index: Index) -> None:
    """Without a node's signature the index answers 401."""
    response = index.a.client.post("/index/v1/lookup", json={"tokens": [{"variant": "x", "value": "0" * 64}]})
    assert response.status_code == 401


def test_lookups_past_a_nodes_budget_get_429_and_every_call_is_audited_without_tokens(index: Index) -> None:
    """Burst 2: the third lookup is refused with the catalog message; the audit has counts, not tokens."""
    index.app.state.index_limiter = TokenBucketLimiter(rate_per_s=1e-6, burst=2)
    index.b.publish("ref-b-000", ALICE)
    tokens = [{"variant": t.variant, "value": t.value_hex} for t in query_tokens(ALICE, KEY)]
    answers = [index.a.post("/index/v1/lookup", {"tokens": tokens}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2].json() == {"error": {"code": "rate_limited", "message": CATALOG[ErrorCode.RATE_LIMITED].message}}
    assert index.b.lookup(BOB) == [], "another node's budget is its own"
    rows = index_store.read_audit(index.coordinator.engine, node_id=index.a.node_id)
    assert [(r["action"], r["status"], r["hits"]) for r in rows] == [
        ("lookup", 429, None),
        ("lookup", 200, 1),
        ("lookup", 200, 1),
    ]
    assert all(r["items"] == len(tokens) for r in rows)
    text = orjson.dumps(index_store.read_audit(index.coordinator.engine)).decode()
    assert "ref-b-000" not in text
    assert tokens[0]["value"] not in text


# --- FEBRL 4 through the real index -------------------------------------------------------------------

SAMPLE = 400


def _febrl(path: Path) -> dict[str, Demographics]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, skipinitialspace=True))
    return {
        row["rec_id"].strip(): Demographics(
            given=row["given_name"].strip() or None,
            family=row["surname"].strip() or None,
            birth_date=row["date_of_birth"].strip() or None,
            postcode=row["postcode"].strip() or None,
            street_number=row["street_number"].strip() or None,
            street=row["address_1"].strip() or None,
            address_line2=row["address_2"].strip() or None,
            locality=row["suburb"].strip() or None,
            state=row["state"].strip() or None,
            national_id=row["soc_sec_id"].strip() or None,
        )
        for row in rows
    }


def _ref(record_id: str) -> str:
    return record_id.replace("rec-", "r").replace("-", "_").ljust(8, "_")


@pytest.mark.slow
def test_febrl4_lookups_through_the_real_index_find_the_true_matches(index: Index, shared_data: Path) -> None:
    """A sample of FEBRL 4: B's records looked up in A's published index reach recall 0.95 at precision 0.99.

    The sample is the first 400 true pairs plus 400 other A records as distractors; full figures
    (5,000 x 5,000, and within a million generated people) are in benchmarks/README.md.
    """
    folder = shared_data / "febrl"
    site_a, site_b = _febrl(folder / "dataset4a.csv"), _febrl(folder / "dataset4b.csv")
    with (folder / "febrl4_true_matches.csv").open(newline="") as handle:
        truth = [(row[0].strip(), row[1].strip()) for row in list(csv.reader(handle))[1:]]
    pairs = truth[:SAMPLE]
    paired = {a for a, _ in pairs}
    distractors = [record for record in sorted(site_a) if record not in {a for a, _ in truth}][:SAMPLE]
    published = [*paired, *distractors]
    for start in range(0, len(published), 200):
        records = [
            {
                "ref": _ref(rid),
                "tokens": [{"variant": t.variant, "value": t.value_hex} for t in tokens_for(site_a[rid], KEY)],
            }
            for rid in published[start : start + 200]
        ]
        response = index.a.post("/index/v1/publish", {"key_id": KEY.key_id, "records": records})
        assert response.status_code == 200, response.text
    expected = {(_ref(a), b) for a, b in pairs}
    found: set[tuple[str, str]] = set()
    for _, b_id in pairs:
        for _node, ref, decision in index.b.lookup(site_b[b_id]):
            if decision == "MATCH":
                found.add((ref, b_id))
    true_found = len(found & expected)
    recall, precision = true_found / len(expected), true_found / max(1, len(found))
    assert recall >= 0.95, f"recall {recall:.3f}"
    assert precision >= 0.99, f"precision {precision:.3f}"
