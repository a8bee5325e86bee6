"""The printed enrolment code (both sides read the same format) and the enrolment failure limiter."""

from __future__ import annotations

import pytest

from common.crypto import b64url_encode, canonical_json
from common.errors import InputError, InternalError
from coordinator.api.routes.enrol import FailureLimiter
from coordinator.store.enrolment import (
    CODE_PREFIX,
    EnrolmentCodeError,
    RefusalReason,
    format_code,
    parse_code,
    read_code,
)
from node.identity import parse_enrolment_code
from tests.clock import Clock

FINGERPRINT = "sha256:" + "ab" * 32
SECRET = "s" * 43


def _printed(contents: dict[str, object]) -> str:
    return CODE_PREFIX + b64url_encode(canonical_json(contents))


def test_a_printed_code_carries_secret_fingerprint_url_and_name_to_both_sides() -> None:
    """format_code's printed code reads back the same on the coordinator (read_code) and on the node."""
    code = format_code(SECRET, fingerprint=FINGERPRINT, url="https://coord.example:8443", node_name="St Mary's")
    assert code.startswith(CODE_PREFIX)
    assert SECRET not in code  # the secret is inside the encoded JSON, not in plain sight
    contents = read_code(f"  {code}\n")
    assert (contents.secret, contents.fingerprint, contents.url, contents.node_name) == (
        SECRET,
        FINGERPRINT,
        "https://coord.example:8443",
        "St Mary's",
    )
    assert parse_code(code) == SECRET
    node_side = parse_enrolment_code(code)
    assert (node_side.secret, node_side.fingerprint, node_side.url, node_side.node_name) == (
        SECRET,
        FINGERPRINT,
        "https://coord.example:8443",
        "St Mary's",
    )
    assert SECRET not in repr(node_side)


def test_the_url_is_optional_in_a_printed_code() -> None:
    """A code without ``u`` reads with url None on both sides (the node then looks on the LAN)."""
    code = _printed({"v": 1, "s": SECRET, "f": FINGERPRINT, "n": "Site"})
    assert read_code(code).url is None
    assert parse_enrolment_code(code).url is None


def test_the_bare_form_is_the_secret_alone_and_cannot_be_pinned() -> None:
    """format_code without details is mfe_<secret>: the store accepts it, the node and read_code refuse it."""
    bare = format_code(SECRET)
    assert bare == CODE_PREFIX + SECRET
    assert parse_code(bare) == SECRET
    with pytest.raises(EnrolmentCodeError) as caught:
        read_code(bare)
    assert caught.value.reason is RefusalReason.MALFORMED
    with pytest.raises(InputError):
        parse_enrolment_code(bare)


@pytest.mark.parametrize(
    "contents",
    [
        {"v": 2, "s": SECRET, "f": FINGERPRINT, "n": "Site"},
        {"v": True, "s": SECRET, "f": FINGERPRINT, "n": "Site"},
        {"v": 1, "s": SECRET, "f": "sha256:short", "n": "Site"},
        {"v": 1, "s": SECRET, "f": FINGERPRINT, "n": ""},
        {"v": 1, "s": "", "f": FINGERPRINT, "n": "Site"},
        {"v": 1, "s": SECRET, "f": FINGERPRINT, "n": "Site", "u": "ftp://x"},
        {"v": 1, "s": SECRET, "f": FINGERPRINT, "n": "Site", "x": 1},
        {"v": 1, "s": SECRET, "n": "Site"},
    ],
)
def test_printed_codes_with_a_wrong_field_are_refused(contents: dict[str, object]) -> None:
    """Another version, a bool version, a bad fingerprint, an empty name or secret, a non-http URL, an unknown or
    missing field: the node refuses the code, and the coordinator does not read it as a printed code."""
    code = _printed(contents)
    with pytest.raises(InputError):
        parse_enrolment_code(code)
    with pytest.raises(EnrolmentCodeError):
        read_code(code)


def test_partial_coordinator_details_are_a_bug() -> None:
    """A printed code needs both the fingerprint and the node name; passing one of them is refused."""
    with pytest.raises(InternalError, match="fingerprint and the node name"):
        format_code(SECRET, fingerprint=FINGERPRINT)


def test_the_node_refuses_garbage_without_quoting_it() -> None:
    """Text that is not a code is an InputError whose message does not contain the text."""
    plant = "PLANTedValue42"
    for garbage in ("", "mfe_", plant, f"mfe_{plant}", f"mfe_{plant}!", "mfe_" + plant * 400):
        with pytest.raises(InputError) as caught:
            parse_enrolment_code(garbage)
        assert plant not in str(caught.value)


def test_an_address_is_blocked_after_max_failures_until_the_window_passes() -> None:
    """Three failures block the address (and only it); when the oldest is window_s old, it may try again."""
    clock = Clock(1000.0)
    limiter = FailureLimiter(max_failures=3, window_s=60, clock=clock)
    for _ in range(2):
        limiter.record_failure("10.0.0.1")
        clock.now += 1
    assert not limiter.blocked("10.0.0.1")
    limiter.record_failure("10.0.0.1")
    assert limiter.blocked("10.0.0.1")
    assert not limiter.blocked("10.0.0.2")
    clock.now = 1000.0 + 60
    assert not limiter.blocked("10.0.0.1")


def test_the_limiter_forgets_the_least_recent_address_beyond_its_size() -> None:
    """With room for two addresses, a third failing address evicts the one that failed least recently."""
    clock = Clock(1000.0)
    limiter = FailureLimiter(max_failures=1, window_s=60, max_addresses=2, clock=clock)
    for address in ("a", "b", "c"):
        limiter.record_failure(address)
    assert [limiter.blocked(address) for address in ("a", "b", "c")] == [False, True, True]
