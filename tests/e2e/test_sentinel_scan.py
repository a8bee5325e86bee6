"""A representative end-to-end run leaves no identifier, token, key or request body in any process's logs.

A coordinator and two hospital nodes run as ``medfed ... start`` processes on loopback. The run does
what a network does: enrolment (``medfed node enrol`` with one-time codes), ingest (``medfed node
ingest`` of a Bundle with planted sentinel patients, beside generated ones), a linkage key shared by
``medfed node linkage-key``, a Patient created through the FHIR API, an analytics count and a
histogram, a FedAvg job of two rounds (each signed by a registered researcher), and a record-locator
lookup that releases the sentinel patient's record from the other node. Then every process is stopped
and every log and every command's output is searched for:

- the sentinel patients' names, MRNs, birth date, address and postcode, and the FHIR request body;
- every API token (node admin and clinician, coordinator admin and researcher) and enrolment code;
- key material: every private key and secret file under the data directories and the researcher's
  key directory (PEM bodies, raw keys in hex and base64, in every alignment).

A command's output may hold what it was asked to print (``token create`` prints the token); nothing
else may. The coordinator's database must hold no patient identifier either.
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
import orjson
import pytest

from common.crypto import client_ssl_context
from coordinator.config import CoordinatorSettings
from coordinator.identity import CA_CERT_FILE, TLS_DIR, CoordinatorIdentity
from coordinator.index.secret import ensure_rekey_secret
from coordinator.runtime import init_coordinator, open_engine
from coordinator.store.enrolment import create_enrolment_code
from coordinator.store.tokens import Role, create_token
from node.config import NodeSettings
from node.fhir.ingest import ingest_paths
from node.generator import generate
from node.identity import NodeIdentity
from node.linkage.keyfile import key_path
from node.runtime import init_node, open_service
from tests.e2e.conftest import _free_port
from tests.e2e.leaks import Sentinels, base64_forms, found_in, text_forms
from tests.e2e.processes import MedfedProcesses, healthy, index_records, online_nodes
from tests.locator_data import patient
from tests.researchers import Researcher, add_researcher

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 300.0
COMMAND_TIMEOUT_S = 300.0
GENERATED = 6

GIVEN, FAMILY = "Vexmorrow", "Thistlequade"
BIRTH_DATE = "1917-02-03"
LINE, POSTCODE = "88 Quillon Mews", "ZQ9 8KX"
MRN_A, MRN_B = "MRN-A-SENT7QX4", "MRN-B-SENT2WK9"
API_FAMILY = "Ombrevalequist"  # the Patient created through the FHIR API: its request body
HISTOGRAM: dict[str, Any] = {
    "kind": "analysis",
    "analysis": "histogram",
    "params": {"column": "value", "lower": 4.0, "upper": 12.0, "bins": 8},
    "source": {"view": "lab_observations"},
    "cohort": {"op": "in", "column": "loinc_code", "values": ["4548-4"]},
}
FEDAVG: dict[str, Any] = {"kind": "fedavg_mlp", "rounds": 2, "hidden": [8], "batch_size": 256, "quorum": 2}


@dataclass
class Site:
    """One hospital: settings, log, node id, its sentinel patient's id and how many patients it holds."""

    name: str
    settings: NodeSettings
    log: Path
    patients: int
    node_id: str = ""
    sentinel_id: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"


@dataclass
class Run(MedfedProcesses):
    """The coordinator, two sites, the secrets handed out, and every output written."""

    root: Path
    coordinator: CoordinatorSettings
    url: str
    admin_token: str
    researcher: Researcher
    a: Site
    b: Site
    secrets: dict[str, str] = field(default_factory=dict)
    outputs: list[Path] = field(default_factory=list)
    printed: dict[str, set[str]] = field(default_factory=dict)  # output file -> secrets it was asked to print
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def ca_file(self) -> Path:
        return self.coordinator.data_dir / TLS_DIR / CA_CERT_FILE

    def log_paths(self) -> list[Path]:
        return [self.root / "coordinator.log", self.a.log, self.b.log]

    def command(self, args: list[str], name: str, *, timeout_s: float = COMMAND_TIMEOUT_S) -> str:
        return super().command(args, name, timeout_s=timeout_s)

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            verify=client_ssl_context(self.ca_file.read_bytes()),
            headers={"Authorization": f"Bearer {self.admin_token}"},
            timeout=10.0,
            trust_env=False,
        )

    def online(self) -> set[str]:
        return online_nodes(self.api)


def _sentinel_bundle(mrn: str) -> dict[str, Any]:
    resource = patient(given=GIVEN, family=FAMILY, birth_date=BIRTH_DATE, line=LINE, postcode=POSTCODE, mrn=mrn)
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"resource": resource, "request": {"method": "POST", "url": "Patient"}}],
    }


def _prepare(root: Path) -> Run:
    """Data directories, generated patients, tokens and the researcher, made in-process before anything runs."""
    port = _free_port()
    settings = CoordinatorSettings(data_dir=root / "coordinator", port=port)
    engine, _ = init_coordinator(settings)
    try:
        ensure_rekey_secret(settings.data_dir)
        _, admin = create_token(engine, role=Role.ADMIN, label="sentinel admin")
        researcher = add_researcher(engine, settings.data_dir, root / "keys")
    finally:
        engine.dispose()
    sites = []
    for index, name in enumerate(("Site A", "Site B")):
        node_settings = NodeSettings(data_dir=root / f"node-{index}", port=_free_port())
        engine, _ = init_node(node_settings)
        engine.dispose()
        out = root / f"generated-{index}"
        generated = generate(patients=GENERATED, seed=300 + index, out=out, fmt="ndjson", site=f"sentinel-{index}")
        service = open_service(node_settings)
        ingest_paths(service, [out], max_bundle_entries=node_settings.max_bundle_entries)
        service.engine.dispose()
        sites.append(
            Site(name, node_settings, root / f"node-{index}.log", patients=generated.patients + 1)
        )  # +sentinel
    run = Run(root, settings, f"https://127.0.0.1:{port}", admin, researcher, sites[0], sites[1])
    run.secrets.update({"coordinator admin token": admin, "researcher token": researcher.token})
    return run


def _set_up(run: Run) -> None:
    """Ingest the sentinels, share the linkage key, enrol, make tokens, start everything, create a Patient by API."""
    for site, mrn in ((run.a, MRN_A), (run.b, MRN_B)):
        bundle = run.root / f"sentinel-{site.settings.data_dir.name}.json"
        bundle.write_bytes(orjson.dumps(_sentinel_bundle(mrn)))
        run.command(["node", "ingest", str(bundle), "--data-dir", str(site.settings.data_dir)], f"ingest-{site.name}")
        bundle.unlink()  # the input file itself is not a log
    run.command(["node", "linkage-key", "init", "--data-dir", str(run.a.settings.data_dir)], "linkage-init")
    run.command(
        [
            "node",
            "linkage-key",
            "import",
            str(key_path(run.a.settings.data_dir)),
            "--data-dir",
            str(run.b.settings.data_dir),
        ],
        "linkage-import",
    )
    tokens = {}
    for role in ("admin", "clinician"):
        name = f"token-{role}"
        tokens[role] = run.command(
            ["node", "token", "create", "--data-dir", str(run.a.settings.data_dir), "--role", role], name
        ).strip()
        run.secrets[f"node {role} token"] = tokens[role]
        run.printed[f"{name}.stdout"] = {f"node {role} token"}

    run.spawn_coordinator(run.coordinator, run.url)
    fingerprint = CoordinatorIdentity.load(run.coordinator.data_dir).ca_fingerprint
    engine = open_engine(run.coordinator)
    try:
        codes = {
            site.name: create_enrolment_code(
                engine, node_name=site.name, ttl_s=600, fingerprint=fingerprint, public_url=run.url
            ).code
            for site in (run.a, run.b)
        }
    finally:
        engine.dispose()
    for site in (run.a, run.b):
        run.secrets[f"enrolment code {site.name}"] = codes[site.name]
        run.command(
            ["node", "enrol", codes[site.name], "--data-dir", str(site.settings.data_dir), "--coordinator", run.url],
            f"enrol-{site.name}",
        )
        identity = NodeIdentity.load(site.settings.data_dir)
        assert identity is not None
        site.node_id = str(identity.node_id)
    for site in (run.a, run.b):
        run.spawn(
            ["node", "start", "--data-dir", str(site.settings.data_dir), "--port", str(site.settings.port)], site.log
        )
    for site in (run.a, run.b):
        run.wait_for(functools.partial(healthy, site.url), f"{site.name} /healthz")
    run.wait_for(lambda: {run.a.node_id, run.b.node_id} <= run.online(), "both nodes online")

    created = httpx.post(
        f"{run.a.url}/fhir/Patient",
        content=orjson.dumps(
            patient(given=GIVEN, family=API_FAMILY, birth_date=BIRTH_DATE, line=LINE, postcode=POSTCODE)
        ),
        headers={"Authorization": f"Bearer {tokens['admin']}", "Content-Type": "application/fhir+json"},
        timeout=30.0,
        trust_env=False,
    )
    assert created.status_code == 201, created.text
    run.a.patients += 1
    found = httpx.get(
        f"{run.a.url}/fhir/Patient",
        params={"identifier": f"urn:hospital:mrn|{MRN_A}"},
        headers={"Authorization": f"Bearer {tokens['clinician']}"},
        timeout=30.0,
        trust_env=False,
    )
    run.a.sentinel_id = found.json()["entry"][0]["resource"]["id"]
    expected = {run.a.node_id: run.a.patients, run.b.node_id: run.b.patients}
    run.wait_for(lambda: index_records(run.coordinator) == expected, "every patient in the index")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    """The network set up and running; every process stopped afterwards by its own handle."""
    prepared = _prepare(tmp_path_factory.mktemp("sentinel-e2e"))
    try:
        _set_up(prepared)
        yield prepared
    finally:
        prepared.stop_all()


# --- the secrets to look for -----------------------------------------------------------------------------


def _key_material(roots: list[Path]) -> Sentinels:
    """Every private key and secret file under ``roots``: its text and raw forms (case-folded, and base64)."""
    found: Sentinels = {}
    for root in roots:
        for path in sorted(root.rglob("*.key")):
            text = path.read_text().strip()
            name = f"key {path.parent.name}/{path.name}"
            if text.startswith("-----BEGIN"):
                body = "".join(line for line in text.splitlines() if not line.startswith("-----"))
                der = base64.b64decode(body)
                raw = der[-32:]  # Ed25519 and X25519 keys end in their 32 raw bytes
                lines = {
                    line.encode() for line in text.splitlines() if not line.startswith("-----") and len(line) >= 16
                }
                found[name] = (
                    {der.hex().encode(), raw.hex().encode()},
                    lines | base64_forms(der) | base64_forms(raw),
                )
            else:
                try:
                    raw = bytes.fromhex(text)
                except ValueError:
                    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
                found[name] = ({text.casefold().encode(), raw.hex().encode()}, {text.encode()} | base64_forms(raw))
    return found


def _sentinels(run: Run, request_body: bytes) -> Sentinels:
    values = {
        "given name": GIVEN,
        "family name": FAMILY,
        "API family name": API_FAMILY,
        "birth date": BIRTH_DATE,
        "address line": LINE,
        "postcode": POSTCODE,
        "mrn A": MRN_A,
        "mrn B": MRN_B,
        **run.secrets,
    }
    sentinels = {name: (text_forms(value), base64_forms(value.encode())) for name, value in values.items()}
    sentinels["birth date"][0].add(BIRTH_DATE.replace("-", "").encode())
    sentinels["postcode"][0].add(POSTCODE.replace(" ", "").casefold().encode())
    sentinels["request body"] = ({request_body.lower()}, set())
    roots = [run.coordinator.data_dir, run.a.settings.data_dir, run.b.settings.data_dir, run.researcher.key_file.parent]
    sentinels.update(_key_material(roots))
    return sentinels


# --- the run and the scan --------------------------------------------------------------------------------


def _work(run: Run) -> None:
    """Enrolled, ingested: a count, a histogram and FedAvg (2 rounds) succeed; locate releases B's sentinel record."""
    with run.researcher.federation(run.url, run.ca_file) as researcher:
        for spec in ({"kind": "count"}, HISTOGRAM, FEDAVG):
            job = researcher.wait(researcher.submit(spec, seed=11)["id"], timeout=JOB_TIMEOUT_S)
            assert job["status"] == "succeeded", (spec["kind"], job.get("error"), run.logs())
        count = researcher.results(researcher.jobs()[-1]["id"])
    assert count["result"]["total"] == run.a.patients + run.b.patients

    located = httpx.get(
        f"{run.a.url}/locate",
        params={"patient": run.a.sentinel_id, "purpose": "treatment"},
        headers={"Authorization": f"Bearer {run.secrets['node clinician token']}"},
        timeout=90.0,
        trust_env=False,
    )
    assert located.status_code == 200, located.text
    records = located.json()["records"]
    assert [(r["origin"], r["status"]) for r in records] == [(run.b.node_id, "released")]


def test_a_representative_run_leaves_no_identifier_token_key_or_request_body_in_any_log(run: Run) -> None:
    """Jobs and a lookup run and succeed; then, every process stopped, no log and no command output holds any
    sentinel it was not asked to print, and the coordinator's database holds no patient identifier."""
    _work(run)
    body = orjson.dumps(patient(given=GIVEN, family=API_FAMILY, birth_date=BIRTH_DATE, line=LINE, postcode=POSTCODE))
    sentinels = _sentinels(run, body)
    assert len([name for name in sentinels if name.startswith("key ")]) >= 8, sorted(sentinels)
    run.stop_all()
    logs = [run.root / "coordinator.log", run.a.log, run.b.log, *run.outputs]
    logs += [path for path in run.root.rglob("*.log") if path not in logs]
    leaks = {}
    for path in logs:
        found = found_in(path.read_bytes(), sentinels) - run.printed.get(path.name, set())
        if found:
            leaks[path.name] = sorted(found)
    assert leaks == {}
    identifiers = {
        "given name",
        "family name",
        "API family name",
        "birth date",
        "address line",
        "postcode",
        "mrn A",
        "mrn B",
    }
    for path in sorted(run.coordinator.data_dir.glob("coordinator.db*")):
        assert found_in(path.read_bytes(), sentinels) & identifiers == set(), path.name
    # The scan sees what it looks for: the token where it was printed, a key hidden in base64.
    assert "node clinician token" in found_in((run.root / "token-clinician.stdout").read_bytes(), sentinels)
    signing_key_file = run.coordinator.data_dir / "identity" / "coordinator_signing.key"
    der = base64.b64decode("".join(signing_key_file.read_text().splitlines()[1:-1]))
    planted = b"x" + base64.urlsafe_b64encode(b"q" + der[-32:])
    assert found_in(planted, sentinels) == {"key identity/coordinator_signing.key"}
