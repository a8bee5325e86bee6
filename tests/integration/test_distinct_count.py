"""A de-duplicated patient count across three nodes: a person known at two hospitals counts once, and the
coordinator sees only masked bitmaps and the released total."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from flwr.app import MessageType

from common.analytics.task import PARTIAL_KEY, RECORD, from_wire
from common.crypto import hmac_sha256
from common.flower import deterministic_message_id, message_from_bytes
from common.linkage import from_fhir_patient, tokens_for
from common.locator.union_count import job_salt, person_token
from coordinator.federation.jobs.specs import AnalysisSpec, parse_spec
from coordinator.store import jobs, messages
from medfed.sdk import Federation
from node.config import NodeSettings
from node.federation.service import build_host
from node.identity import enrol
from node.linkage.keyfile import import_key, init_key, key_path, key_provider
from node.runtime import init_node, open_service
from node.views.materialise import install_standard_views
from tests.integration.network import tls_coordinator
from tests.integration.test_channel import Node
from tests.integration.test_enrolment import Coordinator
from tests.locator_data import patient
from tests.researchers import add_researcher

JOB_WAIT_S = 120
BUCKETS = 1 << 12
BITMAP_MODULUS = 1 << 32
# 25 different people; node A holds 0-11, B 8-17 (8-11 also at A), C 10, 11, 16-24 (10, 11 at A and B;
# 16, 17 at B): 33 patient records, 25 persons.
HOLDINGS = (list(range(12)), list(range(8, 18)), [10, 11, 16, 17, *range(18, 25)])
PERSONS = 25
GIVEN = ["Ada", "Grace", "Edith", "Mary", "Rosalind", "Lise", "Emmy", "Hedy", "Barbara", "Dorothy", "Katherine"]
FAMILY = ["Lovelace", "Hopper", "Clarke", "Somerville", "Franklin", "Meitner", "Noether"]


def person(index: int) -> dict[str, Any]:
    """Person ``index``'s Patient resource, written the same way at every node that holds them."""
    return patient(
        given=GIVEN[index % len(GIVEN)],
        family=FAMILY[index % len(FAMILY)],
        birth_date=f"19{40 + index:02d}-0{1 + index % 9}-1{index % 10}",
        line=f"{index + 1} Wattle Crescent",
        postcode=f"29{index:02d}",
    )


@dataclass
class DistinctNetwork:
    """The coordinator, three nodes sharing a linkage key, the researcher."""

    coordinator: Coordinator
    nodes: list[Node]
    node_dirs: list[Path]
    researcher: Federation
    researcher_id: str

    def run(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Submit as the researcher and return the ended job."""
        job = self.researcher.submit_analysis(spec)
        assert self.coordinator.app.state.runner.join(job["id"], JOB_WAIT_S), "the job did not end in time"
        return self.researcher.job(job["id"])


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DistinctNetwork]:
    """A coordinator over TLS and three nodes with the standard views, overlapping patients and one linkage key."""
    with tls_coordinator(tmp_path_factory, "distinct-coordinator") as (coordinator, data, ca_file):
        who = add_researcher(coordinator.engine, data, data / "keys")
        researcher = who.federation(coordinator.url, ca_file)
        nodes: list[Node] = []
        node_dirs: list[Path] = []
        try:
            for index, holding in enumerate(HOLDINGS):
                node_dir = tmp_path_factory.mktemp(f"distinct-node-{index}")
                settings = NodeSettings(data_dir=node_dir)
                init_node(settings)
                if node_dirs:
                    import_key(node_dir, key_path(node_dirs[0]))
                else:
                    init_key(node_dir)
                service = open_service(settings)
                install_standard_views(service.engine)
                for person_index in holding:
                    service.create(person(person_index))
                identity = enrol(node_dir, coordinator.code(f"Distinct {index} {uuid.uuid4().hex[:6]}"), version="test")
                node = Node(identity, service, build_host(service, identity.flower_node_id, data_dir=node_dir))
                node.connect()
                nodes.append(node)
                node_dirs.append(node_dir)
            yield DistinctNetwork(coordinator, nodes, node_dirs, researcher, who.name)
        finally:
            researcher.close()
            for node in nodes:
                node.disconnect()
                node.service.engine.dispose()


SPEC: dict[str, Any] = {
    "analysis": "distinct_count",
    "params": {"patient": "patient_id", "buckets": BUCKETS},
    "source": {"view": "patient_demographics"},
}


@pytest.fixture(scope="module")
def finished(network: DistinctNetwork) -> dict[str, Any]:
    """The distinct-count job over the three nodes, ended."""
    job = network.run(SPEC)
    assert job["status"] == "succeeded", job["error"]
    return job


def _bucket_sets(network: DistinctNetwork, job_id: str) -> list[set[int]]:
    """Each node's buckets for the job, recomputed from its stored Patients with the network key and salt."""
    bucket = _bucket_function(network, job_id)
    return [
        {
            bucket(orjson.loads(resource.content))
            for resource in node.service.search(node.service.parse("Patient", [("_count", "100")])).matches
        }
        for node in network.nodes
    ]


def _person_buckets(network: DistinctNetwork, job_id: str) -> dict[int, int]:
    """Each person's bucket for the job, computed from the Patient resource the test wrote for them."""
    bucket = _bucket_function(network, job_id)
    return {index: bucket(person(index)) for index in range(PERSONS)}


def _bucket_function(network: DistinctNetwork, job_id: str) -> Callable[[dict[str, Any]], int]:
    """The bucket a Patient resource falls in for the job: the salted person token, as nodes compute it."""
    record = jobs.get_job(network.coordinator.engine, job_id=job_id)
    spec = parse_spec(record.spec)
    assert isinstance(spec, AnalysisSpec)
    digest = spec.task(researcher=record.submitter, job=job_id).digest()
    key = key_provider(network.node_dirs[0]).current()
    salt = job_salt(key, job_id=job_id, spec_digest=digest)

    def bucket(resource: dict[str, Any]) -> int:
        token = person_token(tokens_for(from_fhir_patient(resource), key))
        assert token is not None
        return int.from_bytes(hmac_sha256(salt, token)[:8], "big") % BUCKETS

    return bucket


def _stored_partial(network: DistinctNetwork, job_id: str, step: int, node: Node) -> dict[str, Any]:
    message_id = deterministic_message_id(job_id, step, 1, MessageType.QUERY, node.identity.flower_node_id)
    (reply,) = messages.fetch_replies(network.coordinator.engine, message_ids=[message_id])
    record = message_from_bytes(reply.payload).content.config_records[RECORD]
    partial: dict[str, Any] = from_wire(str(record[PARTIAL_KEY]))
    return partial


def test_a_person_at_two_or_three_nodes_is_counted_once(network: DistinctNetwork, finished: dict[str, Any]) -> None:
    """33 patient records at three nodes are 25 persons: the released total is 25, not 33, and the
    result holds the total only (no per-node sizes)."""
    document = network.researcher.results(finished["id"])["result"]
    assert document["analysis"] == "distinct_count"
    assert document["result"] == {"distinct": PERSONS, "round_to": 5, "buckets": BUCKETS}
    assert sum(len(holding) for holding in HOLDINGS) == 33
    assert {part["disclosure"]["method"] for part in document["nodes"].values()} == {"union-bitmap"}
    assert document["secure_aggregation"]["modulus_bits"] == 32


def test_the_coordinator_stores_masked_bitmaps_that_add_up_to_the_union_only(
    network: DistinctNetwork, finished: dict[str, Any]
) -> None:
    """No stored reply holds a node's bitmap: each masked vector has (almost) no empty bucket where the
    node's bitmap has thousands, step 1 carried only a round key, and the masked vectors add up mod 2**32
    to a bitmap whose set buckets are exactly the union of the nodes' buckets."""
    job_id = finished["id"]
    plain = _bucket_sets(network, job_id)
    total = np.zeros(BUCKETS, dtype=np.uint64)
    for node, buckets in zip(network.nodes, plain, strict=True):
        keys = _stored_partial(network, job_id, 1, node)
        assert set(keys) == {"public_key", "max_value", "min_cell", "method"}
        masked = np.asarray(_stored_partial(network, job_id, 2, node)["masked"], dtype=np.uint64)
        assert masked.shape == (BUCKETS,)
        assert int((masked == 0).sum()) < 5  # a plain bitmap here has more than 4,000 empty buckets
        assert set(np.flatnonzero(masked).tolist()) != buckets
        total = (total + masked) % np.uint64(BITMAP_MODULUS)
    union = set().union(*plain)
    assert set(np.flatnonzero(total).tolist()) == union
    # Two people may share a bucket (the salt comes from the random job id), so compare bucket sets
    # computed per person rather than counting buckets.
    by_person = _person_buckets(network, job_id)
    assert plain == [{by_person[index] for index in holding} for holding in HOLDINGS]
    assert union == set(by_person.values())
