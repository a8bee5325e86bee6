"""sign_request / verify_request: Ed25519-signed node-to-coordinator HTTP requests."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import pytest

from common.crypto import (
    KEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SigningKey,
    VerifyKey,
    b64url_encode,
    sign_request,
    verify_request,
)
from common.errors import AccessError, ErrorCode, InputError, InternalError

_NOW = 1_750_000_000
_KEY = SigningKey.generate()
_KEY_ID = "node-7f3a"
_METHOD = "POST"
_PATH = "/api/v1/nodes/node-7f3a/results?round=3&job=j-1"
_BODY = b'{"count":42}'


class _NonceStore:
    """What a server keeps: every (key id, nonce) it has accepted."""

    def __init__(self) -> None:
        self.seen: set[tuple[str, str]] = set()
        self.calls = 0

    def __call__(self, key_id: str, nonce: str, timestamp: int) -> bool:
        self.calls += 1
        entry = (key_id, nonce)
        if entry in self.seen:
            return True
        self.seen.add(entry)
        return False


def _lookup(key_id: str) -> VerifyKey | None:
    return _KEY.public_key() if key_id == _KEY_ID else None


def _signed(
    *,
    key_id: str = _KEY_ID,
    method: str = _METHOD,
    path_and_query: str = _PATH,
    body: bytes = _BODY,
    timestamp: int = _NOW,
    nonce: str | None = None,
) -> dict[str, str]:
    return sign_request(
        _KEY,
        key_id=key_id,
        method=method,
        path_and_query=path_and_query,
        body=body,
        timestamp=timestamp,
        nonce=nonce,
    )


def _verify(
    headers: Mapping[str, str],
    *,
    method: str = _METHOD,
    path_and_query: str = _PATH,
    body: bytes = _BODY,
    now: int = _NOW,
    seen_nonce: Callable[[str, str, int], bool] | None = None,
) -> str:
    return verify_request(
        headers,
        method=method,
        path_and_query=path_and_query,
        body=body,
        lookup_key=_lookup,
        now=now,
        seen_nonce=seen_nonce or _NonceStore(),
    )


def _refused(
    headers: Mapping[str, str],
    *,
    method: str = _METHOD,
    path_and_query: str = _PATH,
    body: bytes = _BODY,
    seen_nonce: Callable[[str, str, int], bool] | None = None,
) -> AccessError:
    """Verify, expect AccessError(UNAUTHENTICATED) and check that no header value leaks into its text."""
    with pytest.raises(AccessError) as caught:
        _verify(headers, method=method, path_and_query=path_and_query, body=body, seen_nonce=seen_nonce)
    error = caught.value
    assert error.code is ErrorCode.UNAUTHENTICATED
    text = " ".join((str(error), error.detail, *error.hints, repr(error.args)))
    for value in headers.values():
        assert value not in text
    return error


def test_signed_request_verifies_and_returns_the_key_id() -> None:
    """A freshly signed request verifies and verify_request returns the signer's key id."""
    headers = _signed()
    assert set(headers) == {KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER}
    assert headers[TIMESTAMP_HEADER] == str(_NOW)
    assert _verify(headers) == _KEY_ID


def test_default_nonce_is_128_random_bits_and_timestamp_is_now() -> None:
    """Without test overrides, each signature gets a new 22-character nonce and the current time."""
    first = sign_request(_KEY, key_id=_KEY_ID, method="GET", path_and_query="/", body=b"")
    second = sign_request(_KEY, key_id=_KEY_ID, method="GET", path_and_query="/", body=b"")
    assert len(first[NONCE_HEADER]) == 22
    assert first[NONCE_HEADER] != second[NONCE_HEADER]
    assert abs(int(first[TIMESTAMP_HEADER]) - time.time()) < 60
    assert _verify(first, method="GET", path_and_query="/", body=b"", now=int(time.time())) == _KEY_ID


def test_header_names_match_case_insensitively() -> None:
    """HTTP header names are case-insensitive: lower-cased names (as ASGI delivers them) verify too."""
    headers = {name.lower(): value for name, value in _signed().items()}
    assert _verify(headers) == _KEY_ID


def test_method_case_does_not_matter() -> None:
    """The method is signed in upper case, so "post" and "POST" are the same request."""
    assert _verify(_signed(method="post")) == _KEY_ID


def test_tampered_body_is_refused() -> None:
    """A body that differs by one byte from the signed one is refused."""
    _refused(_signed(), body=b'{"count":43}')


def test_tampered_path_is_refused() -> None:
    """Another path or another query string than the signed one is refused."""
    _refused(_signed(), path_and_query="/api/v1/nodes/node-7f3a/results?round=4&job=j-1")
    _refused(_signed(), path_and_query="/api/v1/nodes/node-other/results?round=3&job=j-1")


def test_tampered_method_is_refused() -> None:
    """A signed POST replayed as a PUT is refused."""
    _refused(_signed(), method="PUT")


def test_tampered_signature_is_refused() -> None:
    """A signature with one character changed is refused."""
    headers = _signed()
    signature = headers[SIGNATURE_HEADER]
    headers[SIGNATURE_HEADER] = ("A" if signature[0] != "A" else "B") + signature[1:]
    _refused(headers)


def test_old_timestamp_is_refused() -> None:
    """A request signed more than max_skew_s seconds ago is refused; one at the edge is accepted."""
    _refused(_signed(timestamp=_NOW - 301))
    assert _verify(_signed(timestamp=_NOW - 300)) == _KEY_ID


def test_future_timestamp_is_refused() -> None:
    """A request dated more than max_skew_s seconds in the future is refused."""
    _refused(_signed(timestamp=_NOW + 301))
    assert _verify(_signed(timestamp=_NOW + 300)) == _KEY_ID


def test_changed_timestamp_header_is_refused() -> None:
    """Moving the timestamp header (to dodge the skew check) breaks the signature."""
    headers = _signed(timestamp=_NOW - 10)
    headers[TIMESTAMP_HEADER] = str(_NOW)
    _refused(headers)


def test_replayed_nonce_is_refused() -> None:
    """The same signed request sent twice is accepted once and refused as a replay the second time."""
    store = _NonceStore()
    headers = _signed()
    assert _verify(headers, seen_nonce=store) == _KEY_ID
    error = _refused(headers, seen_nonce=store)
    assert "replay" in error.detail


def test_unknown_key_is_refused() -> None:
    """A key id the server does not know is refused, and the nonce store is not touched."""
    store = _NonceStore()
    _refused(_signed(key_id="node-unknown"), seen_nonce=store)
    assert store.calls == 0


def test_signature_by_another_key_is_refused() -> None:
    """A request signed by a key other than the one registered for the key id is refused."""
    headers = sign_request(
        SigningKey.generate(), key_id=_KEY_ID, method=_METHOD, path_and_query=_PATH, body=_BODY, timestamp=_NOW
    )
    _refused(headers)


def test_nonce_is_recorded_only_after_the_signature_verifies() -> None:
    """A bad signature is refused before seen_nonce is called, so strangers cannot fill the nonce store."""
    store = _NonceStore()
    _refused(_signed(), body=b"other", seen_nonce=store)
    assert store.calls == 0


@pytest.mark.parametrize("missing", [KEY_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER])
def test_missing_header_is_refused(missing: str) -> None:
    """Each of the four headers is required; the error names the missing header."""
    headers = _signed()
    del headers[missing]
    assert missing in _refused(headers).detail


@pytest.mark.parametrize(
    ("header", "value"),
    [
        (TIMESTAMP_HEADER, "-5"),
        (TIMESTAMP_HEADER, "17e8"),
        (TIMESTAMP_HEADER, " 1750000000"),
        (NONCE_HEADER, "short"),
        (NONCE_HEADER, "has spaces in it and is long enough"),
        (SIGNATURE_HEADER, "not-a-signature"),
        (SIGNATURE_HEADER, "A" * 85 + "B"),
        (KEY_HEADER, "node 7f3a"),
        (KEY_HEADER, "node\n7f3a"),
    ],
)
def test_malformed_header_is_refused(header: str, value: str) -> None:
    """Header values outside their strict syntax are refused without being echoed."""
    headers = _signed()
    headers[header] = value
    _refused(headers)


def test_repeated_header_is_refused() -> None:
    """A header given twice (in any case) is ambiguous and refused."""

    class _RawHeaders(dict[str, str]):
        """A mapping whose items() lists one header twice, as Starlette's Headers.items() does."""

        def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
            pairs = list(super().items())
            return [*pairs, (KEY_HEADER.lower(), "node-other")]

    _refused(_RawHeaders(_signed()))


def test_signing_refuses_fields_that_cannot_be_sent() -> None:
    """sign_request raises InputError for a bad path, an empty or over-long key id, a short nonce or a negative time."""
    with pytest.raises(InputError):
        _signed(path_and_query="/a\nb")
    with pytest.raises(InputError):
        _signed(path_and_query="relative")
    with pytest.raises(InputError):
        _signed(key_id="")
    with pytest.raises(InputError):
        _signed(key_id="k" * 129)
    with pytest.raises(InputError):
        _signed(nonce="tooshort")
    with pytest.raises(InputError):
        _signed(timestamp=-1)


def test_explicit_nonce_is_used() -> None:
    """A nonce passed by the caller is the nonce sent."""
    nonce = b64url_encode(bytes(range(16)))
    assert _signed(nonce=nonce)[NONCE_HEADER] == nonce


def test_non_positive_skew_is_a_caller_bug() -> None:
    """max_skew_s must be positive; zero is an InternalError, not a silently closed door."""
    with pytest.raises(InternalError):
        verify_request(
            _signed(),
            method=_METHOD,
            path_and_query=_PATH,
            body=_BODY,
            lookup_key=_lookup,
            now=_NOW,
            max_skew_s=0,
            seen_nonce=_NonceStore(),
        )
