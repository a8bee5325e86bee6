"""One-time enrolment codes: stored only as a hash, usable once, until they expire."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from common.errors import AccessError, ConflictError, ErrorCode, InputError
from coordinator.store.db import write_transaction
from coordinator.store.enrolment import (
    CODE_PREFIX,
    EnrolmentCodeError,
    RefusalReason,
    consume_enrolment_code,
    create_enrolment_code,
    enrol_node,
)
from coordinator.store.nodes import get_node, list_nodes, register_node
from tests.integration.coordinator.conftest import new_public_key

SECOND = 1_000_000


def _stored_text(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return repr(conn.execute(sa.text("SELECT * FROM enrolment_code")).all())


def test_a_code_is_shown_once_and_stored_only_as_a_hash(engine: sa.Engine) -> None:
    """The code has the mfe_ prefix; neither the code nor its secret part is in the database."""
    issued = create_enrolment_code(engine, node_name="Site A", ttl_s=60, now=SECOND)
    assert issued.code.startswith(CODE_PREFIX)
    assert len(issued.code) > len(CODE_PREFIX) + 40
    assert issued.expires_at == 61 * SECOND
    stored = _stored_text(engine)
    assert issued.code[len(CODE_PREFIX) :] not in stored
    assert "Site A" in stored


def test_a_code_works_once(engine: sa.Engine) -> None:
    """The first use returns the node name; the second is refused as used."""
    issued = create_enrolment_code(engine, node_name="Site A", ttl_s=60, now=SECOND)
    assert consume_enrolment_code(engine, code=issued.code, now=2 * SECOND) == "Site A"
    with pytest.raises(EnrolmentCodeError) as caught:
        consume_enrolment_code(engine, code=issued.code, now=3 * SECOND)
    assert caught.value.reason is RefusalReason.USED
    assert isinstance(caught.value, AccessError)
    assert caught.value.code is ErrorCode.UNAUTHENTICATED


def test_expired_unknown_and_malformed_codes_are_refused(engine: sa.Engine) -> None:
    """A code is refused at its expiry time and after, and unknown or malformed codes are refused."""
    issued = create_enrolment_code(engine, node_name="Site A", ttl_s=60, now=SECOND)
    with pytest.raises(EnrolmentCodeError) as expired:
        consume_enrolment_code(engine, code=issued.code, now=61 * SECOND)
    assert expired.value.reason is RefusalReason.EXPIRED
    with pytest.raises(EnrolmentCodeError) as unknown:
        consume_enrolment_code(engine, code=CODE_PREFIX + "x" * 43, now=SECOND)
    assert unknown.value.reason is RefusalReason.UNKNOWN
    for malformed in ("", "mfe_", "abc", "mfn_" + "x" * 43, CODE_PREFIX + "x" * 300):
        with pytest.raises(EnrolmentCodeError) as caught:
            consume_enrolment_code(engine, code=malformed, now=SECOND)
        assert caught.value.reason is RefusalReason.MALFORMED
    # The refusals left the code as it was: still unused, still expired.
    with pytest.raises(EnrolmentCodeError) as still:
        consume_enrolment_code(engine, code=issued.code, now=62 * SECOND)
    assert still.value.reason is RefusalReason.EXPIRED


def test_enrol_node_uses_the_code_and_registers_together(engine: sa.Engine) -> None:
    """enrol_node registers the named node; when registration fails, the code stays unused."""
    issued = create_enrolment_code(engine, node_name="Site B", ttl_s=60, now=SECOND)
    with pytest.raises(InputError):
        enrol_node(engine, code=issued.code, public_key="too-short", now=2 * SECOND)
    assert list_nodes(engine) == []
    node = enrol_node(engine, code=issued.code, public_key=new_public_key(), version="0.1.0", now=3 * SECOND)
    assert node.id == "site-b"
    assert get_node(engine, node_id="site-b").version == "0.1.0"
    with pytest.raises(EnrolmentCodeError):
        enrol_node(engine, code=issued.code, public_key=new_public_key(), now=4 * SECOND)


def test_codes_are_not_issued_for_taken_ids_or_bad_names(engine: sa.Engine) -> None:
    """A name whose slug belongs to a node already, or that has no letters or digits, gets no code."""
    register_node(engine, name="Site C", public_key=new_public_key())
    with pytest.raises(ConflictError):
        create_enrolment_code(engine, node_name="site c", ttl_s=60)
    with pytest.raises(InputError):
        create_enrolment_code(engine, node_name="---", ttl_s=60)
    assert "site" not in _stored_text(engine).lower()


def test_store_functions_compose_in_one_transaction(engine: sa.Engine) -> None:
    """Calls given one connection commit together, or roll back together when the block fails."""
    issued = create_enrolment_code(engine, node_name="Site D", ttl_s=60, now=SECOND)

    def enrol_then_fail() -> None:
        with write_transaction(engine) as conn:
            consume_enrolment_code(conn, code=issued.code, now=2 * SECOND)
            register_node(conn, name="Site D", public_key=new_public_key())
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        enrol_then_fail()
    assert list_nodes(engine) == []
    assert consume_enrolment_code(engine, code=issued.code, now=3 * SECOND) == "Site D"
