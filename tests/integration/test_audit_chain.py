"""The audit chain in a real database (SQLite and PostgreSQL): tampering with any row is found at that entry.

Rows are changed with plain SQL, as someone with database access but without the node's audit key
would. Editing, deleting or reordering entries fails ``verify`` at the entry concerned; cutting entries
off the end, or restoring an older copy, fails ``verify --against RECEIPT``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from common.audit_receipt import Receipt, read_receipt
from common.crypto import SealingKey, SigningKey
from common.ids import NodeId
from coordinator.store import receipts
from medfed.cli import app as cli
from node.audit import AuditKind, AuditLog, chain_head_receipt
from node.audit.checks import verify_export
from node.audit.export import export_chain
from node.audit.receipts import ReceiptSender
from node.audit.verify import VerifyReport, trusted_keys, verify_chain
from node.config import NodeSettings
from node.coordinator_client import CoordinatorClient
from node.identity import NodeIdentity, enrol
from node.runtime import init_node
from node.store.audit import read_events
from node.store.audit_chain import chain_head
from node.store.db import make_engine
from tests.integration.conftest import NodeClient
from tests.integration.test_enrolment import running_coordinator

ENTRIES = 10


@pytest.fixture
def audit(database_url: str, tmp_path: Path) -> Iterator[AuditLog]:
    """An audit log over a migrated database, with ten FHIR-access entries after its first entry."""
    engine = make_engine(database_url)
    log = AuditLog.open(engine, tmp_path)
    for i in range(ENTRIES - 1):
        log.api_call(
            actor="token:1:clinician",
            action="fhir.read",
            status=200,
            resource_type="Patient",
            resource_ref=f"Patient/p{i}",
        )
    yield log
    engine.dispose()


def verify(log: AuditLog, receipt: Receipt | None = None) -> VerifyReport:
    """Verify as `medfed node audit verify` does on the node: the data directory's key pinned."""
    keys = trusted_keys(log.engine, [log.public_key])
    return verify_chain(log.engine, keys=keys, subject_key=log.subject_key, receipt=receipt)


def execute(log: AuditLog, statement: str, **params: object) -> None:
    """Change the audit table behind the log's back."""
    with log.engine.begin() as conn:
        conn.execute(sa.text(statement), params)


def identity_for() -> NodeIdentity:
    """A node identity good enough to sign receipts (the coordinator side is not involved here)."""
    return NodeIdentity(
        node_id=NodeId("st-marys"),
        flower_node_id=1234,
        coordinator_url="https://coordinator.example",
        ca_pem=b"",
        ca_fingerprint="",
        coordinator_public_key=SigningKey.generate().public_key(),
        enrolled_at=datetime.now(UTC),
        signing_key=SigningKey.generate(),
        sealing_key=SealingKey.generate(),
    )


def test_an_untouched_chain_verifies(audit: AuditLog) -> None:
    """The first entry names the key; ten entries verify; the head row agrees."""
    report = verify(audit)
    assert report.ok, report.problem
    assert report.last_seq == ENTRIES
    assert chain_head(audit.engine) == (ENTRIES, report.last_hash)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("at", 1),
        ("kind", "api.call"),
        ("actor", "token:2:admin"),
        ("details", '{"action":"fhir.read","origin":"local","resource_type":"Patient","status":404}'),
        ("subject", "h1:00000000000000000000000000000000"),
        ("subject_ref", "Patient/someone-else"),
        ("prev_hash", "0" * 64),
        ("hash", "f" * 64),
        ("key_id", "sha256:" + "0" * 64),
        ("signature", "A" * 86),
    ],
)
def test_editing_any_column_fails_at_that_entry(audit: AuditLog, column: str, value: object) -> None:
    """An UPDATE of any one column of entry 5 makes verification fail at entry 5."""
    execute(audit, f"UPDATE audit_entry SET {column} = :value WHERE seq = 5", value=value)
    report = verify(audit)
    assert not report.ok
    assert report.first_bad_seq == 5, report.problem


def test_deleting_an_entry_fails_at_it(audit: AuditLog) -> None:
    """DELETE of entry 6 makes verification fail at 6: missing."""
    execute(audit, "DELETE FROM audit_entry WHERE seq = 6")
    report = verify(audit)
    assert (report.ok, report.first_bad_seq) == (False, 6)


def test_reordering_entries_fails_at_the_first_moved_one(audit: AuditLog) -> None:
    """Swapping the sequence numbers of entries 4 and 7 fails verification at 4."""
    execute(audit, "UPDATE audit_entry SET seq = -1 WHERE seq = 4")
    execute(audit, "UPDATE audit_entry SET seq = 4 WHERE seq = 7")
    execute(audit, "UPDATE audit_entry SET seq = 7 WHERE seq = -1")
    report = verify(audit)
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_deleting_the_newest_entries_shows_against_the_head_row(audit: AuditLog) -> None:
    """Deleting entries 9-10 (and leaving the head row) fails at 9."""
    execute(audit, "DELETE FROM audit_entry WHERE seq > 8")
    report = verify(audit)
    assert (report.ok, report.first_bad_seq) == (False, 9)


def _cut_to(log: AuditLog, seq: int) -> None:
    """Delete every entry after ``seq`` and move the head back: a careful truncation."""
    with log.engine.begin() as conn:
        digest = conn.execute(sa.text("SELECT hash FROM audit_entry WHERE seq = :s"), {"s": seq}).scalar_one()
        conn.execute(sa.text("DELETE FROM audit_entry WHERE seq > :s"), {"s": seq})
        conn.execute(sa.text("UPDATE audit_chain_head SET seq = :s, hash = :h"), {"s": seq, "h": digest})


def test_a_careful_truncation_is_caught_only_by_a_receipt(audit: AuditLog) -> None:
    """Entries cut off with the head moved back verify on their own, and fail against an earlier receipt."""
    identity = identity_for()
    receipt = read_receipt(chain_head_receipt(audit.engine, identity), identity.signing_key.public_key())
    assert receipt.seq == ENTRIES
    _cut_to(audit, 7)
    assert verify(audit).ok
    report = verify(audit, receipt)
    assert (report.ok, report.first_bad_seq) == (False, 8)


def test_appends_from_many_threads_leave_no_gaps(audit: AuditLog) -> None:
    """Four threads appending at once produce sequence numbers without gaps, and the chain verifies."""

    def append() -> None:
        for _ in range(25):
            audit.api_call(actor="token:1:clinician", action="fhir.search", status=200, resource_type="Observation")

    threads = [threading.Thread(target=append) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with audit.engine.connect() as conn:
        seqs = [row[0] for row in conn.execute(sa.text("SELECT seq FROM audit_entry ORDER BY seq"))]
    assert seqs == list(range(1, ENTRIES + 101))
    assert verify(audit).ok


def test_the_audit_key_changing_is_recorded_and_older_entries_stay_verifiable(
    database_url: str, tmp_path: Path
) -> None:
    """A replaced audit key is recorded as key.rotated; the old key is trusted through that entry."""
    engine = make_engine(database_url)
    try:
        first = AuditLog.open(engine, tmp_path / "a")
        first.api_call(actor="token:1:admin", action="fhir.create", status=201)
        second = AuditLog.open(engine, tmp_path / "b")  # another data directory: another key
        second.api_call(actor="token:1:admin", action="fhir.create", status=201)
        with engine.connect() as conn:
            kinds = [row[0] for row in conn.execute(sa.text("SELECT kind FROM audit_entry ORDER BY seq"))]
        assert kinds == ["audit.started", "fhir.access", "key.rotated", "fhir.access"]
        assert verify(second).ok
    finally:
        engine.dispose()


def test_api_calls_are_chain_entries_with_pseudonyms(node: NodeClient) -> None:
    """A FHIR read is a fhir.access entry whose details and subject hold no resource id; the local column does."""
    created = node.client.post(
        "/fhir/Patient", json={"resourceType": "Patient", "gender": "female"}, headers=node.admin
    )
    resource_id = created.json()["id"]
    node.client.get(f"/fhir/Patient/{resource_id}", headers=node.clinician)
    with node.engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT kind, details, subject, subject_ref FROM audit_entry ORDER BY seq DESC LIMIT 1")
        ).one()
    assert row.kind == "fhir.access"
    assert resource_id not in row.details
    assert resource_id not in row.subject
    assert row.subject_ref == f"Patient/{resource_id}"
    assert read_events(node.engine)[0].resource_id == resource_id
    log: AuditLog = node.client.app.state.audit_log  # type: ignore[attr-defined]
    assert row.subject == log.pseudonym(f"Patient/{resource_id}")
    assert verify(log).ok


def test_an_export_verifies_holds_no_local_references_and_shows_edits(audit: AuditLog, tmp_path: Path) -> None:
    """The export verifies with the pinned key, carries pseudonyms only, and an edited line fails there."""
    out = tmp_path / "audit.jsonl"
    assert export_chain(audit.engine, out) == ENTRIES
    text = out.read_text()
    assert "Patient/p3" not in text
    report, pinned = verify_export(out, public_keys=[audit.public_key_text])
    assert (report.ok, pinned, report.last_seq) == (True, True, ENTRIES)
    lines = text.splitlines()
    entry = orjson.loads(lines[4])  # entry 4 (line 1 is the header)
    entry["details"]["status"] = 500
    lines[4] = orjson.dumps(entry).decode()
    out.write_text("\n".join(lines) + "\n")
    report, _ = verify_export(out, public_keys=[audit.public_key_text])
    assert (report.ok, report.first_bad_seq) == (False, 4)


def test_an_export_cut_short_fails_against_its_own_header(audit: AuditLog, tmp_path: Path) -> None:
    """An export missing its last lines fails: its header names the head it was made at."""
    out = tmp_path / "audit.jsonl"
    export_chain(audit.engine, out)
    out.write_text("\n".join(out.read_text().splitlines()[:-2]) + "\n")
    report, _ = verify_export(out, public_keys=[audit.public_key_text])
    assert (report.ok, report.first_bad_seq) == (False, ENTRIES - 1)


class _Link:
    def __init__(self) -> None:
        self.posted: list[tuple[str, dict[str, object]]] = []

    def post_json(self, path: str, body: dict[str, object], *, timeout: float | None = None) -> object:
        self.posted.append((path, body))
        return {"outcome": "stored"}

    def close(self) -> None:
        pass


def test_the_receipt_sender_posts_signed_receipts_of_the_head(audit: AuditLog) -> None:
    """send_once posts to /channel/v1/receipts a receipt of the current head signed by the node key."""
    identity = identity_for()
    link = _Link()
    sender = ReceiptSender(audit.engine, identity, link, interval_s=300)
    assert sender.send_once()
    ((path, body),) = link.posted
    assert path == "/channel/v1/receipts"
    receipt = read_receipt(body, identity.signing_key.public_key())
    assert (receipt.node, receipt.seq, receipt.audit_key) == ("st-marys", ENTRIES, audit.public_key_text)


def test_enrolment_is_recorded_once_per_identity_key(audit: AuditLog) -> None:
    """record_enrolment appends key.enrolled for a new identity key, and nothing for one seen before."""
    identity = identity_for()
    key = identity.signing_key.public_key().to_text()
    assert audit.record_enrolment(node_id="st-marys", identity_public_key=key) is not None
    assert audit.record_enrolment(node_id="st-marys", identity_public_key=key) is None
    assert chain_head(audit.engine)[0] == ENTRIES + 1


runner = CliRunner()


def _copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database with SQLite's backup API (consistent with its WAL and open connections)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


def _cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    result = runner.invoke(cli, list(args), env=env)
    return result.exit_code, result.stdout + result.stderr


def test_the_cli_verifies_and_catches_a_restored_older_copy(tmp_path: Path) -> None:
    """`audit verify` exits 0 on a good chain; after an older copy of the database is restored, 1 with --against."""
    data = tmp_path / "node"
    env = {"MEDFED_NODE_DATA_DIR": str(data)}
    assert _cli("node", "init", env=env)[0] == 0
    for _ in range(3):
        assert _cli("node", "token", "create", "--role", "clinician", env=env)[0] == 0
    code, out = _cli("node", "audit", "verify", env=env)
    assert (code, "OK" in out) == (0, True), out
    database, older = data / "node.db", tmp_path / "older.db"
    _copy_database(database, older)  # a backup, taken now
    assert _cli("node", "token", "create", "--role", "admin", env=env)[0] == 0
    engine = make_engine(f"sqlite:///{database}")
    identity = identity_for()
    receipt_path = tmp_path / "receipt.json"
    receipt_path.write_bytes(orjson.dumps(chain_head_receipt(engine, identity)))
    engine.dispose()
    node_key = identity.signing_key.public_key().to_text()
    args = ("node", "audit", "verify", "--against", str(receipt_path), "--node-key", node_key)
    assert _cli(*args, env=env)[0] == 0
    _copy_database(older, database)  # the older copy is put back
    assert _cli("node", "audit", "verify", env=env)[0] == 0  # on its own it looks fine
    code, out = _cli(*args, env=env)
    assert code == 1
    assert "BROKEN at entry 5" in out
    assert "older copy" in out


def test_cli_export_writes_the_chain_for_an_auditor(tmp_path: Path) -> None:
    """`audit export OUT` writes a header and every entry; `verify --export` proves it."""
    data = tmp_path / "node"
    env = {"MEDFED_NODE_DATA_DIR": str(data)}
    assert _cli("node", "init", env=env)[0] == 0
    assert _cli("node", "token", "create", "--role", "admin", env=env)[0] == 0
    out = tmp_path / "export.jsonl"
    assert _cli("node", "audit", "export", str(out), env=env)[0] == 0
    lines = out.read_bytes().splitlines()
    header = orjson.loads(lines[0])
    assert header["format"] == "medfed-audit-export"
    assert [orjson.loads(line)["kind"] for line in lines[1:]] == [str(AuditKind.STARTED), str(AuditKind.TOKEN_CREATED)]
    code, text = _cli("node", "audit", "verify", "--export", str(out), env=env)
    assert code == 0, text
    assert _cli("node", "audit", "export", str(out), env=env)[0] == 3  # never over an existing file


def test_an_enrolled_node_files_receipts_that_catch_its_own_rollback(tmp_path: Path) -> None:
    """Over the real TLS channel: the coordinator keeps the node's receipt; the node's chain, cut back, fails it."""
    coordinator_dir, node_dir = tmp_path / "coordinator", tmp_path / "node"
    coordinator_dir.mkdir()
    with running_coordinator(coordinator_dir, f"sqlite:///{coordinator_dir / 'coordinator.db'}") as coordinator:
        settings = NodeSettings(data_dir=node_dir)
        init_node(settings)
        identity = enrol(node_dir, coordinator.code("St Mary"), version="test")
        engine = make_engine(settings.sqlalchemy_url)
        log = AuditLog.open(engine, node_dir)
        log.record_enrolment(node_id=identity.node_id, identity_public_key=identity.signing_key.public_key().to_text())
        sender = ReceiptSender(engine, identity, CoordinatorClient(identity), interval_s=300)
        assert sender.send_once()
        stored = receipts.get_receipt(coordinator.engine, node_id=identity.node_id)
        receipt = read_receipt(stored.receipt, identity.signing_key.public_key())
        assert (receipt.seq, receipt.audit_key) == (chain_head(engine)[0], log.public_key_text)
        assert verify(log, receipt).ok
        _cut_to(log, 1)
        assert not verify(log, receipt).ok
        assert not sender.send_once()  # the coordinator refuses a receipt that goes backwards (409)
        assert receipts.get_receipt(coordinator.engine, node_id=identity.node_id).conflicts == 1
        sender.stop()
        engine.dispose()
