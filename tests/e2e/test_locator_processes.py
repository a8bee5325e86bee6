"""The record locator with real processes: ``medfed coordinator start`` and three ``medfed node start``.

The network is prepared in-process (data directories, patients, enrolment), the linkage key is created
at node A and imported at B and C with the ``medfed node linkage-key`` commands, A's clinician token with
``medfed node token create``; then every service runs as its own process on loopback, each stopped by its
own handle. Readiness is observed by polling (``/healthz``, the coordinator's index filling up), never by
sleeping a fixed time.

The patient is planted with sentinel values (a name, MRNs, a birth date, a postcode, a Chinese resident
ID) and B's released laboratory result carries a sentinel note; the last test stops every process and
searches every log, every command's output and every database for them (:func:`test_leak_scan_...`).
"""

from __future__ import annotations

import base64
import functools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from common.crypto import SealingKey, SigningKey
from common.locator.certificates import issue_certificate
from coordinator.config import CoordinatorSettings
from coordinator.identity import CoordinatorIdentity
from coordinator.index.secret import ensure_rekey_secret
from coordinator.runtime import init_coordinator, open_engine
from coordinator.store.enrolment import create_enrolment_code
from node.config import NodeSettings
from node.fhir.resources import new_id, now_micros, prepare
from node.fhir.service import FhirService
from node.identity import enrol
from node.linkage.keyfile import key_path
from node.linkage.outbox import OUTBOX
from node.runtime import init_node, open_service
from node.store.db import make_engine, write_transaction
from tests.e2e.conftest import _free_port
from tests.e2e.leaks import Sentinels, base64_forms, found_in, text_forms
from tests.e2e.processes import MedfedProcesses, healthy, index_records
from tests.locator_data import LAB_CODE, condition, lab, opt_out_consent, patient

pytestmark = pytest.mark.slow

# Sentinels: values that must appear only where they belong (the hospitals that hold the patient).
GIVEN = "Quorvina"
FAMILY = "Zephyrwald"
BIRTH_DATE = "1915-11-11"
POSTCODE = "QX7 4ZJ"
RESIDENT_ID = "110105191511117508"
MRN_A, MRN_B, MRN_C = "MRN-A-7Q3XKV", "MRN-B-9W2JPD", "MRN-C-4T8ZRN"
LAB_NOTE = "SENTINEL-LAB-NOTE-5KX9Q"


@dataclass
class Site:
    """One hospital: its settings, log, node id and the ids of its planted patients."""

    name: str
    settings: NodeSettings
    log: Path
    node_id: str = ""
    patients: dict[str, str] = field(default_factory=dict)


@dataclass
class Network(MedfedProcesses):
    """The coordinator and three hospitals, their processes and what the commands printed."""

    root: Path
    coordinator: CoordinatorSettings
    url: str
    a: Site
    b: Site
    c: Site
    clinician_token: str = ""
    outputs: list[Path] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def sites(self) -> tuple[Site, Site, Site]:
        return (self.a, self.b, self.c)

    def log_paths(self) -> list[Path]:
        return [self.root / "coordinator.log", *(site.log for site in self.sites)]

    def coordinator_db(self) -> sa.Engine:
        return sa.create_engine(self.coordinator.sqlalchemy_url)

    def index_records(self) -> dict[str, int]:
        return index_records(self.coordinator)

    def locate(self, patient_id: str) -> dict[str, Any]:
        """``GET /locate`` on node A with the clinician's token."""
        response = httpx.get(
            f"http://127.0.0.1:{self.a.settings.port}/locate",
            params={"patient": patient_id, "purpose": "treatment"},
            headers={"Authorization": f"Bearer {self.clinician_token}"},
            timeout=90.0,
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def audit(self, site: Site) -> list[dict[str, Any]]:
        """The site's locator audit rows, oldest first."""
        engine = make_engine(site.settings.sqlalchemy_url)
        try:
            with engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM locator_audit ORDER BY id"))]
        finally:
            engine.dispose()


def _prepare(root: Path) -> Network:
    port = _free_port()
    settings = CoordinatorSettings(data_dir=root / "coordinator", port=port)
    engine, _ = init_coordinator(settings)
    engine.dispose()
    ensure_rekey_secret(settings.data_dir)
    sites = [
        Site(name, NodeSettings(data_dir=root / f"node-{letter}", port=_free_port()), root / f"node-{letter}.log")
        for letter, name in (("a", "Site A"), ("b", "Site B"), ("c", "Site C"))
    ]
    network = Network(root, settings, f"https://127.0.0.1:{port}", sites[0], sites[1], sites[2])
    sentinel = {"given": GIVEN, "family": FAMILY, "birth_date": BIRTH_DATE, "postcode": POSTCODE}
    for site, mrn, line in (
        (sites[0], MRN_A, "7 Kestrel Row"),
        (sites[1], MRN_B, "51 Heron Quay"),
        (sites[2], MRN_C, "7 Kestrel Row"),
    ):
        init_node(site.settings)
        service = open_service(site.settings)
        site.patients["sentinel"] = service.create(
            patient(**sentinel, line=line, city="Lowmoor", mrn=mrn, resident_id=RESIDENT_ID)
        ).stored.id
        service.engine.dispose()
    service = open_service(sites[0].settings)
    # The relative: same names and suburb as B's record below, another birth date and street.
    sites[0].patients["relative"] = service.create(
        patient(
            given="Eudora",
            family="Pellingham",
            birth_date="1970-01-02",
            line="99 Other Road",
            city="Fennick",
            postcode="2917",
        )
    ).stored.id
    service.engine.dispose()
    service = open_service(sites[1].settings)
    at_b = sites[1].patients["sentinel"]
    service.create(lab(at_b, days_ago=25, value=17.3579, note=LAB_NOTE))
    service.create(condition(at_b, days_ago=45))
    sites[1].patients["relative"] = service.create(
        patient(
            given="Eudora",
            family="Pellingham",
            birth_date="1958-03-14",
            line="14 Wattle Crescent",
            city="Fennick",
            postcode="2917",
        )
    ).stored.id
    service.engine.dispose()
    return network


def _enrol(network: Network) -> None:
    fingerprint = CoordinatorIdentity.load(network.coordinator.data_dir).ca_fingerprint
    engine = open_engine(network.coordinator)
    try:
        for site in network.sites:
            code = create_enrolment_code(
                engine, node_name=site.name, ttl_s=600, fingerprint=fingerprint, public_url=network.url
            )
            site.node_id = str(enrol(site.settings.data_dir, code.code, version="e2e").node_id)
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    """A coordinator and three nodes as processes, A's and B's and C's patients published."""
    net = _prepare(tmp_path_factory.mktemp("locator-e2e"))
    try:
        net.spawn_coordinator(net.coordinator, net.url)
        _enrol(net)
        a_dir = str(net.a.settings.data_dir)
        net.command(["node", "linkage-key", "init", "--data-dir", a_dir], "linkage-init")
        for site in (net.b, net.c):
            net.command(
                [
                    "node",
                    "linkage-key",
                    "import",
                    str(key_path(net.a.settings.data_dir)),
                    "--data-dir",
                    str(site.settings.data_dir),
                ],
                f"linkage-import-{site.node_id}",
            )
        net.clinician_token = net.command(
            ["node", "token", "create", "--data-dir", a_dir, "--role", "clinician", "--label", "e2e clinician"],
            "token-create",
        ).strip()
        for site in net.sites:
            net.spawn(
                ["node", "start", "--data-dir", str(site.settings.data_dir), "--port", str(site.settings.port)],
                site.log,
            )
        for site in net.sites:
            url = f"http://127.0.0.1:{site.settings.port}"
            net.wait_for(functools.partial(healthy, url), f"{site.name} /healthz")
        expected = {net.a.node_id: 2, net.b.node_id: 2, net.c.node_id: 1}
        net.wait_for(lambda: net.index_records() == expected, "every node's patients in the index")
        yield net
    finally:
        net.stop_all()


def _forge_certificate(network: Network, node_id: str) -> None:
    """Put a certificate for ``node_id`` signed by a key that is not the network admin's into the coordinator."""
    engine = network.coordinator_db()
    try:
        with engine.begin() as conn:
            public_key = conn.execute(sa.text("SELECT public_key FROM node WHERE id = :n"), {"n": node_id}).scalar_one()
            forged = issue_certificate(
                SigningKey.generate(),
                node_id=node_id,
                public_key=public_key,
                seal_public_key=SealingKey.generate().public_key().to_text(),
                issued_at=now_micros(),
            )
            conn.execute(sa.text("DELETE FROM node_key_certificate WHERE node_id = :n"), {"n": node_id})
            conn.execute(
                sa.text(
                    "INSERT INTO node_key_certificate (node_id, public_key, seal_public_key, issued_at, signature)"
                    " VALUES (:node_id, :public_key, :seal_public_key, :issued_at, :signature)"
                ),
                forged.model_dump(),
            )
    finally:
        engine.dispose()


def _drop_certificate(network: Network, node_id: str) -> None:
    engine = network.coordinator_db()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DELETE FROM node_key_certificate WHERE node_id = :n"), {"n": node_id})
    finally:
        engine.dispose()


def _by_origin(answer: dict[str, Any]) -> dict[str, list[tuple[str, str, str | None]]]:
    shown: dict[str, list[tuple[str, str, str | None]]] = {}
    for record in answer["records"]:
        shown.setdefault(record["origin"], []).append((record["decision"], record["status"], record.get("reason")))
    return shown


def _inbound(network: Network, site: Site, *, after: int) -> list[dict[str, Any]]:
    return [row for row in network.audit(site)[after:] if row["direction"] == "inbound"]


def test_a_requester_whose_key_is_not_certified_is_refused_by_every_holder_and_both_sides_audit_it(
    network: Network,
) -> None:
    """A's certificate at the coordinator is forged: B and C refuse (key_not_certified), audited at A, B and C."""
    before = {site.node_id: len(network.audit(site)) for site in network.sites}
    _forge_certificate(network, network.a.node_id)
    try:
        answer = network.locate(network.a.patients["sentinel"])
    finally:
        _drop_certificate(network, network.a.node_id)  # the next request gets a genuine one issued

    refused = ("MATCH", "refused", "key_not_certified")
    assert _by_origin(answer) == {network.b.node_id: [refused], network.c.node_id: [refused]}
    for holder in (network.b, network.c):
        rows = _inbound(network, holder, after=before[holder.node_id])
        assert [(r["peer_node"], r["outcome"], r["reason"]) for r in rows] == [
            (network.a.node_id, "refused", "key_not_certified")
        ]
    outbound = network.audit(network.a)[before[network.a.node_id] :]
    assert {(r["peer_node"], r["outcome"], r["reason"]) for r in outbound} >= {
        (network.b.node_id, "refused", "key_not_certified"),
        (network.c.node_id, "refused", "key_not_certified"),
    }
    assert all(r["purpose"] == "TREAT" for r in outbound)


def test_records_are_found_released_or_refused_for_consent_and_demographics_and_audited_on_both_sides(
    network: Network,
) -> None:
    """B releases a year of labs and diagnoses; C refuses (an opt-out not yet withdrawn); a relative is refused."""
    c_patient = network.c.patients["sentinel"]
    engine = make_engine(network.c.settings.sqlalchemy_url)
    try:  # the opt-out, written as if its withdrawal had not yet reached the index
        with write_transaction(engine) as conn:
            FhirService.insert_new(conn, [prepare(opt_out_consent(c_patient), new_id(), 1, now_micros())])
            conn.execute(OUTBOX.delete())
    finally:
        engine.dispose()
    before = {site.node_id: len(network.audit(site)) for site in network.sites}

    answer = network.locate(network.a.patients["sentinel"])

    assert _by_origin(answer) == {
        network.b.node_id: [("MATCH", "released", None)],
        network.c.node_id: [("MATCH", "refused", "consent")],
    }
    bundle = next(r["bundle"] for r in answer["records"] if r["status"] == "released")
    codes = {c["code"] for e in bundle["entry"] for c in e["resource"]["code"]["coding"]}
    assert codes == {LAB_CODE, "E11.9"}
    assert answer["released"] == 1
    b_rows = _inbound(network, network.b, after=before[network.b.node_id])
    assert [(r["outcome"], r["record_count"], r["purpose"]) for r in b_rows] == [("released", 2, "TREAT")]
    c_rows = _inbound(network, network.c, after=before[network.c.node_id])
    assert [(r["outcome"], r["reason"], r["patient_id"]) for r in c_rows] == [("refused", "consent", c_patient)]

    relative = network.locate(network.a.patients["relative"])
    assert _by_origin(relative) == {network.b.node_id: [("POSSIBLE", "refused", "demographics_mismatch")]}
    outcomes = {(r["peer_node"], r["outcome"], r["reason"]) for r in network.audit(network.a)}
    assert {
        (network.b.node_id, "released", None),
        (network.c.node_id, "refused", "consent"),
        (network.b.node_id, "refused", "demographics_mismatch"),
    } <= outcomes


def test_medfed_node_locate_prints_the_records_with_their_origin(network: Network) -> None:
    """The CLI runs the same locate from the node's data directory and prints JSON."""
    printed = network.command(
        ["node", "locate", network.a.patients["relative"], "--data-dir", str(network.a.settings.data_dir)],
        "node-locate",
    )
    assert '"origin": "' + network.b.node_id + '"' in printed
    assert "demographics_mismatch" in printed


def test_the_coordinator_deletes_relayed_messages_once_they_are_delivered(network: Network) -> None:
    """After the exchanges above, the relay mailbox is empty: nothing relayed is kept."""

    def empty() -> bool:
        engine = network.coordinator_db()
        try:
            with engine.connect() as conn:
                return int(conn.execute(sa.text("SELECT count(*) FROM relay_message")).scalar_one()) == 0
        finally:
            engine.dispose()

    network.wait_for(empty, "the relay mailbox to empty", deadline_s=60)


# --- the leak scan -------------------------------------------------------------------------------------


def _sentinels(network: Network) -> Sentinels:
    """Each sentinel's case-folded text forms and its case-sensitive base64 forms."""
    key_hex = key_path(network.a.settings.data_dir).read_text().strip()
    key = bytes.fromhex(key_hex)
    values = {
        "given name": GIVEN,
        "family name": FAMILY,
        "birth date": BIRTH_DATE,
        "postcode": POSTCODE,
        "resident id": RESIDENT_ID,
        "mrn A": MRN_A,
        "mrn B": MRN_B,
        "mrn C": MRN_C,
        "lab note": LAB_NOTE,
        "bearer token": network.clinician_token,
    }
    sentinels = {name: (text_forms(value), base64_forms(value.encode())) for name, value in values.items()}
    sentinels["birth date"][0].add(BIRTH_DATE.replace("-", "").encode())
    sentinels["postcode"][0].add(POSTCODE.replace(" ", "").casefold().encode())
    sentinels["linkage key"] = ({key_hex.casefold().encode()}, base64_forms(key))
    return sentinels


def _found(path: Path, sentinels: Sentinels) -> set[str]:
    return found_in(path.read_bytes(), sentinels)


def test_leak_scan_finds_no_identifier_key_or_token_where_it_does_not_belong(network: Network) -> None:
    """Every log, command output and database, after the exchanges above: sentinels only at the hospitals holding them.

    - the coordinator's database and log hold none (no clinical content of a relayed record, either);
    - no process's output or log holds any;
    - the linkage key and the bearer token are in no database; B's MRN and B's released laboratory note
      are nowhere but at B (A shows the note to its clinician and keeps none of it).
    """
    sentinels = _sentinels(network)
    network.stop_all()
    logs = [network.root / "coordinator.log", *(site.log for site in network.sites), *network.outputs]
    leaks: dict[str, set[str]] = {}
    for path in logs:
        names = _found(path, sentinels) - ({"bearer token"} if path.name == "token-create.stdout" else set())
        if names:
            leaks[path.name] = names
    coordinator_files = sorted(network.coordinator.data_dir.glob("coordinator.db*"))
    assert coordinator_files
    for path in coordinator_files:
        if found := _found(path, sentinels):
            leaks[path.name] = found
    patient = {"given name", "family name", "birth date", "postcode", "resident id"}
    holders = [
        (network.a, patient | {"mrn A"}),
        (network.b, patient | {"mrn B", "lab note"}),
        (network.c, patient | {"mrn C"}),
    ]
    for site, allowed in holders:
        files = sorted(site.settings.data_dir.glob("node.db*"))
        at_site: set[str] = set()
        for path in files:
            found = _found(path, sentinels)
            at_site |= found
            if found - allowed:
                leaks[f"{site.name}/{path.name}"] = found - allowed
        assert {"family name", "birth date"} <= at_site, "the scan finds what a holder does hold"
    assert leaks == {}
    # The scan sees every form it looks for: the token where it was printed, the key hidden in base64.
    assert "bearer token" in _found(network.root / "token-create.stdout", sentinels)
    planted = network.root / "planted.bin"
    planted.write_bytes(
        b"x" + base64.urlsafe_b64encode(b"ab" + bytes.fromhex(key_path(network.a.settings.data_dir).read_text()))
    )
    assert _found(planted, sentinels) == {"linkage key"}
