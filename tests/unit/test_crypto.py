"""The crypto recipes of common.crypto: keys, key files, HKDF/HMAC, sealed boxes, base64url."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import common.crypto
from common.crypto import (
    SealingKey,
    SealPublicKey,
    SigningKey,
    VerifyKey,
    b64url_decode,
    b64url_encode,
    constant_time_equal,
    derive_key,
    hmac_sha256,
    load_private_key_pem,
    open_sealed,
    save_private_key,
    seal,
    sha256,
)
from common.errors import AccessError, ConfigError, ErrorCode, InputError, InternalError

# RFC 8032 §7.1, TEST 1 (empty message) and TEST 2 (one byte).
_RFC8032_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
_RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
_RFC8032_SIGNATURE_EMPTY = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)
# PKCS#8 prefix of an Ed25519 private key (RFC 8410 §7): SEQUENCE, version 0, id-Ed25519, OCTET STRING.
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")

_SEAL_KEY = SealingKey.generate()


def _pem(der: bytes, label: str = "PRIVATE KEY") -> bytes:
    body = base64.encodebytes(der).decode("ascii")
    return f"-----BEGIN {label}-----\n{body}-----END {label}-----\n".encode("ascii")


# --- Ed25519 identity keys ---------------------------------------------------------------------------


def test_signature_verifies_with_the_matching_public_key() -> None:
    """A signature made by a SigningKey verifies under its own public key."""
    key = SigningKey.generate()
    signature = key.sign(b"job spec")
    assert len(signature) == 64
    key.public_key().verify(b"job spec", signature)


@pytest.mark.parametrize("tamper", ["message", "signature", "other_key"])
def test_tampered_signature_is_unauthenticated(tamper: str) -> None:
    """A changed message, a flipped signature bit or another key's signature raises AccessError(UNAUTHENTICATED)."""
    key = SigningKey.generate()
    message, signature = b"job spec", bytearray(key.sign(b"job spec"))
    verifier = key.public_key()
    if tamper == "message":
        message = b"job spec!"
    elif tamper == "signature":
        signature[10] ^= 0x01
    else:
        verifier = SigningKey.generate().public_key()
    with pytest.raises(AccessError) as caught:
        verifier.verify(message, bytes(signature))
    assert caught.value.code is ErrorCode.UNAUTHENTICATED
    assert bytes(signature).hex() not in str(caught.value)


def test_truncated_signature_is_unauthenticated() -> None:
    """A signature of the wrong length is refused like a wrong one, not with a TypeError or ValueError."""
    key = SigningKey.generate()
    with pytest.raises(AccessError):
        key.public_key().verify(b"m", key.sign(b"m")[:63])


def test_rfc8032_known_answer() -> None:
    """SigningKey reproduces RFC 8032 TEST 1: the known public key and signature of the empty message."""
    key = SigningKey.from_pem(_pem(_ED25519_PKCS8_PREFIX + _RFC8032_SECRET))
    assert key.public_key().to_bytes() == _RFC8032_PUBLIC
    assert key.sign(b"") == _RFC8032_SIGNATURE_EMPTY
    VerifyKey.from_bytes(_RFC8032_PUBLIC).verify(b"", _RFC8032_SIGNATURE_EMPTY)


def test_signing_key_pem_round_trip() -> None:
    """to_pem writes unencrypted PKCS#8 that from_pem reads back as the same key."""
    key = SigningKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    again = SigningKey.from_pem(pem)
    assert again.public_key() == key.public_key()
    assert again.sign(b"x") == key.sign(b"x")  # Ed25519 is deterministic


@pytest.mark.parametrize(
    "pem",
    [b"", b"not a key", _pem(b"\x30\x03\x02\x01\x00")],
    ids=["empty", "garbage", "bad-der"],
)
def test_signing_key_from_bad_pem_is_config_error(pem: bytes) -> None:
    """A PEM that is not an Ed25519 private key raises ConfigError."""
    with pytest.raises(ConfigError):
        SigningKey.from_pem(pem)


def test_pem_of_another_key_type_is_refused() -> None:
    """An X25519 PEM is not an Ed25519 key and vice versa: ConfigError, not a silently wrong key."""
    with pytest.raises(ConfigError):
        SigningKey.from_pem(SealingKey.generate().to_pem())
    with pytest.raises(ConfigError):
        SealingKey.from_pem(SigningKey.generate().to_pem())


def test_verify_key_text_and_bytes_round_trip() -> None:
    """A VerifyKey survives to_text/from_text and to_bytes/from_bytes; the text is 43 base64url characters."""
    public = SigningKey.generate().public_key()
    text = public.to_text()
    assert len(text) == 43
    assert set(text) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert VerifyKey.from_text(text) == public
    assert VerifyKey.from_bytes(public.to_bytes()) == public
    assert hash(VerifyKey.from_text(text)) == hash(public)


@pytest.mark.parametrize("raw", [b"", b"\x01" * 31, b"\x01" * 33])
def test_verify_key_from_wrong_length_is_invalid_request(raw: bytes) -> None:
    """Anything but 32 raw bytes raises InputError(INVALID_REQUEST)."""
    with pytest.raises(InputError) as caught:
        VerifyKey.from_bytes(raw)
    assert caught.value.code is ErrorCode.INVALID_REQUEST


@pytest.mark.parametrize("text", ["", "a" * 42, "a" * 43 + "=", "+" * 43, "a" * 42 + "B", "a b"])
def test_verify_key_from_bad_text_is_invalid_request(text: str) -> None:
    """Text that is not the canonical base64url of 32 bytes raises InputError(INVALID_REQUEST)."""
    with pytest.raises(InputError) as caught:
        VerifyKey.from_text(text)
    assert caught.value.code is ErrorCode.INVALID_REQUEST


def test_fingerprint_is_sha256_of_the_raw_public_key() -> None:
    """fingerprint() is "sha256:" followed by the hex SHA-256 of the 32 raw public key bytes."""
    public = VerifyKey.from_bytes(_RFC8032_PUBLIC)
    assert public.fingerprint() == "sha256:" + sha256(_RFC8032_PUBLIC).hex()
    assert public.fingerprint() == "sha256:21fe31dfa154a261626bf854046fd2271b7bed4b6abe45aa58877ef47f9721b9"


def test_repr_shows_the_fingerprint_and_no_key_material() -> None:
    """The repr of a private key names its public fingerprint and holds neither PEM nor raw key bytes."""
    key = SigningKey.from_pem(_pem(_ED25519_PKCS8_PREFIX + _RFC8032_SECRET))
    text = repr(key)
    assert key.public_key().fingerprint() in text
    assert _RFC8032_SECRET.hex() not in text
    assert "PRIVATE" not in text
    sealing = SealingKey.generate()
    assert "PRIVATE" not in repr(sealing)
    assert sealing.public_key().fingerprint() in repr(sealing)


# --- X25519 sealing keys -----------------------------------------------------------------------------


def test_sealing_key_pem_and_text_round_trip() -> None:
    """A SealingKey survives to_pem/from_pem and its public key to_text/from_text."""
    key = SealingKey.generate()
    again = SealingKey.from_pem(key.to_pem())
    assert again.public_key() == key.public_key()
    public = key.public_key()
    assert SealPublicKey.from_text(public.to_text()) == public
    assert SealPublicKey.from_bytes(public.to_bytes()) == public
    assert public.fingerprint() == "sha256:" + sha256(public.to_bytes()).hex()


def test_seal_public_key_from_wrong_length_is_invalid_request() -> None:
    """A SealPublicKey is 32 raw bytes; anything else raises InputError(INVALID_REQUEST)."""
    with pytest.raises(InputError):
        SealPublicKey.from_bytes(b"\x09" * 31)
    with pytest.raises(InputError):
        SealPublicKey.from_text("AAAA")


# --- key files ---------------------------------------------------------------------------------------


def test_saved_key_file_has_mode_0600_and_loads_back(tmp_path: Path) -> None:
    """save_private_key writes the PEM with mode 0600 (whatever the umask); load_private_key_pem reads it."""
    key = SigningKey.generate()
    path = tmp_path / "node.key"
    previous = os.umask(0o000)
    try:
        save_private_key(path, key.to_pem())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key_pem(path) == key.to_pem()
    assert SigningKey.from_pem(load_private_key_pem(path)).public_key() == key.public_key()
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]  # no temporary file left behind


def test_save_refuses_to_overwrite_an_existing_key(tmp_path: Path) -> None:
    """save_private_key raises ConfigError if the file exists, and leaves the existing key untouched."""
    path = tmp_path / "node.key"
    first = SigningKey.generate().to_pem()
    save_private_key(path, first)
    with pytest.raises(ConfigError):
        save_private_key(path, SigningKey.generate().to_pem())
    assert path.read_bytes() == first
    assert [p.name for p in tmp_path.iterdir()] == ["node.key"]


def test_save_refuses_a_dangling_symlink(tmp_path: Path) -> None:
    """A symbolic link at the target path, even a dangling one, is not written through: ConfigError."""
    path = tmp_path / "node.key"
    path.symlink_to(tmp_path / "elsewhere.key")
    with pytest.raises(ConfigError):
        save_private_key(path, SigningKey.generate().to_pem())
    assert not (tmp_path / "elsewhere.key").exists()


def test_save_into_a_missing_directory_is_config_error(tmp_path: Path) -> None:
    """save_private_key does not create directories; a missing one raises ConfigError."""
    with pytest.raises(ConfigError):
        save_private_key(tmp_path / "missing" / "node.key", SigningKey.generate().to_pem())


def test_load_missing_key_file_is_config_error(tmp_path: Path) -> None:
    """load_private_key_pem raises ConfigError for a file that does not exist."""
    with pytest.raises(ConfigError):
        load_private_key_pem(tmp_path / "absent.key")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644])
def test_load_key_file_open_to_group_or_others_is_config_error(tmp_path: Path, mode: int) -> None:
    """A key file with any group or other permission bit raises ConfigError whose detail names no key bytes."""
    path = tmp_path / "node.key"
    pem = SigningKey.generate().to_pem()
    path.write_bytes(pem)
    path.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        load_private_key_pem(path)
    assert pem.decode() not in str(caught.value)
    assert pem.splitlines()[1].decode() not in caught.value.detail


def test_load_key_file_through_symlink_checks_the_target(tmp_path: Path) -> None:
    """A symlinked key file (as Kubernetes mounts secrets) loads when its target has mode 0600."""
    target = tmp_path / "secret.key"
    save_private_key(target, b"-----BEGIN PRIVATE KEY-----\n")
    link = tmp_path / "node.key"
    link.symlink_to(target)
    assert load_private_key_pem(link) == b"-----BEGIN PRIVATE KEY-----\n"


def test_load_directory_is_config_error(tmp_path: Path) -> None:
    """A directory is not a key file: ConfigError."""
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    with pytest.raises(ConfigError):
        load_private_key_pem(directory)


# --- HKDF, HMAC, constant-time comparison ------------------------------------------------------------


def test_derive_key_matches_rfc5869_test_case_1() -> None:
    """derive_key is HKDF-SHA256: it reproduces RFC 5869 Appendix A.1 (test case 1)."""
    okm = derive_key(
        bytes.fromhex("0b" * 22),
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm == bytes.fromhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def test_derive_key_without_salt_matches_rfc5869_test_case_3() -> None:
    """salt=None is RFC 5869's zero salt: with empty info it reproduces Appendix A.3 (test case 3)."""
    okm = derive_key(bytes.fromhex("0b" * 22), info=b"", length=42)
    assert okm == bytes.fromhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")
    assert derive_key(bytes.fromhex("0b" * 22), info=b"", length=42, salt=b"") == okm


def test_derive_key_separates_purposes_by_info() -> None:
    """The same secret gives unrelated 32-byte keys for different info labels."""
    secret = b"network linkage key"
    first = derive_key(secret, info=b"medfed/linkage/full-name-dob")
    second = derive_key(secret, info=b"medfed/linkage/phonetic")
    assert len(first) == len(second) == 32
    assert first != second


@pytest.mark.parametrize("length", [0, -1, 255 * 32 + 1])
def test_derive_key_length_out_of_range_is_internal_error(length: int) -> None:
    """A length outside 1..8160 is a caller bug: InternalError."""
    with pytest.raises(InternalError):
        derive_key(b"secret", info=b"x", length=length)


def test_hmac_sha256_matches_rfc4231_test_case_2() -> None:
    """hmac_sha256 reproduces RFC 4231 test case 2 (key "Jefe")."""
    assert hmac_sha256(b"Jefe", b"what do ya want for nothing?") == bytes.fromhex(
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_sha256_matches_the_fips_180_abc_vector() -> None:
    """sha256 reproduces the FIPS 180-2 example digest of "abc"."""
    assert sha256(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_constant_time_equal() -> None:
    """constant_time_equal is true exactly for equal byte strings, including different lengths."""
    assert constant_time_equal(b"token", b"token")
    assert not constant_time_equal(b"token", b"tokem")
    assert not constant_time_equal(b"token", b"token!")
    assert constant_time_equal(b"", b"")


# --- sealed boxes ------------------------------------------------------------------------------------


def test_seal_open_round_trip() -> None:
    """open_sealed returns what seal sealed, for the same key and context; the box is 49 bytes longer."""
    key = SealingKey.generate()
    sealed = seal(key.public_key(), b"linkage key", context=b"medfed/test")
    assert len(sealed) == len(b"linkage key") + 49
    assert sealed[0] == 0x01
    assert open_sealed(key, sealed, context=b"medfed/test") == b"linkage key"


def test_sealing_twice_gives_different_boxes() -> None:
    """Each box has its own ephemeral key, so sealing the same plaintext twice gives different bytes."""
    public = _SEAL_KEY.public_key()
    assert seal(public, b"same", context=b"c") != seal(public, b"same", context=b"c")


def test_open_with_wrong_key_is_unauthenticated() -> None:
    """A box sealed to one key cannot be opened with another: AccessError(UNAUTHENTICATED)."""
    sealed = seal(SealingKey.generate().public_key(), b"secret", context=b"c")
    with pytest.raises(AccessError) as caught:
        open_sealed(SealingKey.generate(), sealed, context=b"c")
    assert caught.value.code is ErrorCode.UNAUTHENTICATED


def test_open_with_wrong_context_is_unauthenticated() -> None:
    """A box sealed for one context cannot be opened for another: AccessError(UNAUTHENTICATED)."""
    sealed = seal(_SEAL_KEY.public_key(), b"secret", context=b"medfed/linkage-key/v1|node=a")
    with pytest.raises(AccessError):
        open_sealed(_SEAL_KEY, sealed, context=b"medfed/linkage-key/v1|node=b")


@pytest.mark.parametrize("position", [0, 1, 32, 33, -17, -1])
def test_open_with_a_flipped_bit_is_unauthenticated(position: int) -> None:
    """Flipping one bit anywhere (version, ephemeral key, ciphertext, tag) makes the box unopenable."""
    sealed = bytearray(seal(_SEAL_KEY.public_key(), b"secret plaintext", context=b"c"))
    sealed[position] ^= 0x01
    with pytest.raises(AccessError):
        open_sealed(_SEAL_KEY, bytes(sealed), context=b"c")


@pytest.mark.parametrize("length", [0, 1, 33, 48])
def test_open_truncated_box_is_unauthenticated(length: int) -> None:
    """A box shorter than its 49-byte overhead is refused with AccessError, not an IndexError."""
    sealed = seal(_SEAL_KEY.public_key(), b"", context=b"c")
    assert len(sealed) == 49
    with pytest.raises(AccessError):
        open_sealed(_SEAL_KEY, sealed[:length], context=b"c")


def test_open_box_with_low_order_ephemeral_key_is_unauthenticated() -> None:
    """A forged box whose ephemeral key is the all-zero point is refused with AccessError."""
    forged = b"\x01" + bytes(32) + bytes(16)
    with pytest.raises(AccessError):
        open_sealed(_SEAL_KEY, forged, context=b"c")


def test_seal_to_low_order_key_is_invalid_request() -> None:
    """Sealing to the all-zero X25519 point (no shared secret possible) raises InputError."""
    with pytest.raises(InputError):
        seal(SealPublicKey.from_bytes(bytes(32)), b"secret", context=b"c")


@settings(max_examples=50, deadline=None)
@given(plaintext=st.binary(max_size=2048), context=st.binary(max_size=64))
def test_seal_round_trip_on_random_bytes(plaintext: bytes, context: bytes) -> None:
    """Any plaintext sealed under any context opens to itself under that context."""
    sealed = seal(_SEAL_KEY.public_key(), plaintext, context=context)
    assert open_sealed(_SEAL_KEY, sealed, context=context) == plaintext


# --- base64url ---------------------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_b64url_round_trip(data: bytes) -> None:
    """b64url_encode writes no padding and b64url_decode reads it back exactly."""
    text = b64url_encode(data)
    assert "=" not in text
    assert b64url_decode(text) == data


@pytest.mark.parametrize("text", ["A", "AA==", "AB", "a+b/", "AA AA", "ÄÄÄÄ"])
def test_b64url_decode_refuses_non_canonical_text(text: str) -> None:
    """Padding, the standard alphabet, whitespace, impossible lengths and non-zero trailing bits are refused."""
    with pytest.raises(InputError):
        b64url_decode(text)


def test_public_api_is_exported() -> None:
    """common.crypto re-exports the recipes that other packages code against."""
    for name in (
        "SigningKey",
        "VerifyKey",
        "SealingKey",
        "SealPublicKey",
        "save_private_key",
        "load_private_key_pem",
        "seal",
        "open_sealed",
        "derive_key",
        "hmac_sha256",
        "constant_time_equal",
        "canonical_json",
        "sign_request",
        "verify_request",
        "CertificateAuthority",
        "create_ca",
        "issue_server_certificate",
        "issue_client_certificate",
        "certificate_fingerprint",
        "server_ssl_context",
        "client_ssl_context",
    ):
        assert name in common.crypto.__all__
        assert callable(getattr(common.crypto, name))
