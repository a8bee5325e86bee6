"""Coordinator API tokens (shown once, stored hashed) and the replay guard for signed node requests."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from common.errors import AccessError, ErrorCode, InputError
from coordinator.store.db import write_transaction
from coordinator.store.nonces import check_and_insert_nonce, prune_nonces
from coordinator.store.tokens import TOKEN_PREFIX, Role, authenticate, create_token, revoke_token

SECOND = 1_000_000


def test_tokens_authenticate_with_their_role_until_revoked(engine: sa.Engine) -> None:
    """Each role's token authenticates as that role; only its hash is stored; a revoked token fails."""
    made = {role: create_token(engine, role=role, label=f"{role} user") for role in Role}
    for role, (token_id, token) in made.items():
        assert token.startswith(TOKEN_PREFIX)
        principal = authenticate(engine, token=token)
        assert (principal.token_id, principal.role) == (token_id, role)
    with engine.connect() as conn:
        stored = repr(conn.execute(sa.text("SELECT * FROM coordinator_api_token")).all())
    assert all(token not in stored for _, token in made.values())
    token_id, token = made[Role.OBSERVER]
    assert revoke_token(engine, token_id=token_id) is True
    assert revoke_token(engine, token_id=token_id) is False
    with pytest.raises(AccessError):
        authenticate(engine, token=token)
    assert authenticate(engine, token=made[Role.ADMIN][1]).role is Role.ADMIN


@pytest.mark.parametrize("token", [None, "", "mfc_unknown", "mfn_" + "x" * 43, "mfc_" + "x" * 300])
def test_missing_unknown_and_foreign_tokens_are_unauthenticated(engine: sa.Engine, token: str | None) -> None:
    """No token, an unknown one, a node token and an overlong one are all refused the same way."""
    create_token(engine, role=Role.ADMIN)
    with pytest.raises(AccessError) as caught:
        authenticate(engine, token=token)
    assert caught.value.code is ErrorCode.UNAUTHENTICATED


def test_a_nonce_is_accepted_once_per_key(engine: sa.Engine) -> None:
    """The first use of (key, nonce) is new; the same pair again is a replay; another key may reuse the nonce."""
    assert check_and_insert_nonce(engine, key_id="site-a", nonce="n1", now=SECOND) is False
    assert check_and_insert_nonce(engine, key_id="site-a", nonce="n1", now=2 * SECOND) is True
    assert check_and_insert_nonce(engine, key_id="site-b", nonce="n1", now=2 * SECOND) is False
    assert check_and_insert_nonce(engine, key_id="site-a", nonce="n2", now=2 * SECOND) is False


def test_a_replay_inside_a_transaction_does_not_abort_it(engine: sa.Engine) -> None:
    """A replayed nonce inside the caller's transaction is reported, and the transaction goes on to commit."""
    with write_transaction(engine) as conn:
        assert check_and_insert_nonce(conn, key_id="k", nonce="n", now=SECOND) is False
        assert check_and_insert_nonce(conn, key_id="k", nonce="n", now=SECOND) is True
        assert check_and_insert_nonce(conn, key_id="k", nonce="m", now=SECOND) is False
    assert check_and_insert_nonce(engine, key_id="k", nonce="m", now=SECOND) is True


def test_prune_forgets_only_nonces_older_than_the_window(engine: sa.Engine) -> None:
    """Pruning with a 300 s window at t=1000 s deletes nonces seen before t=700 s and keeps the rest."""
    check_and_insert_nonce(engine, key_id="k", nonce="old", now=699 * SECOND)
    check_and_insert_nonce(engine, key_id="k", nonce="edge", now=700 * SECOND)
    check_and_insert_nonce(engine, key_id="k", nonce="new", now=999 * SECOND)
    assert prune_nonces(engine, window_s=300, now=1000 * SECOND) == 1
    assert check_and_insert_nonce(engine, key_id="k", nonce="old", now=1000 * SECOND) is False
    assert check_and_insert_nonce(engine, key_id="k", nonce="edge", now=1000 * SECOND) is True
    assert check_and_insert_nonce(engine, key_id="k", nonce="new", now=1000 * SECOND) is True


@pytest.mark.parametrize(("key_id", "nonce"), [("", "n"), ("k", ""), ("k" * 129, "n"), ("k", "n" * 129)])
def test_empty_or_overlong_nonces_are_input_errors(engine: sa.Engine, key_id: str, nonce: str) -> None:
    """Empty or overlong key ids and nonces are refused before touching the table."""
    with pytest.raises(InputError):
        check_and_insert_nonce(engine, key_id=key_id, nonce=nonce)
