"""The crypto recipes of medfed: the only package that touches ``cryptography.hazmat``.

Like pyca/cryptography's own split, everything else in medfed calls these small, safe recipes and never
the primitives under them:

- :mod:`~common.crypto.keys` — Ed25519 identity keys (:class:`SigningKey`/:class:`VerifyKey`), X25519
  sealing keys (:class:`SealingKey`/:class:`SealPublicKey`), key files written 0600;
- :mod:`~common.crypto.sealing` — :func:`seal`/:func:`open_sealed`, anonymous encryption to a node's key;
- :mod:`~common.crypto.agreement` — :func:`agree_key`, a key two X25519 holders share (secure aggregation);
- :mod:`~common.crypto.kdf` — :func:`derive_key` (HKDF-SHA256), :func:`hmac_sha256`, :func:`sha256`,
  :func:`constant_time_equal`;
- :mod:`~common.crypto.canonical` — :func:`canonical_json` (RFC 8785), the bytes that get signed;
- :mod:`~common.crypto.signed_requests` — :func:`sign_request`/:func:`verify_request`, node-to-coordinator
  request authentication;
- :mod:`~common.crypto.ca` — the private CA and TLS contexts;
- :mod:`~common.crypto.encoding` — strict base64url.

Failures are :mod:`common.errors` errors whose details never hold key material, signatures or header values.
"""

from common.crypto.agreement import agree_key
from common.crypto.ca import (
    CertificateAuthority,
    certificate_fingerprint,
    client_ssl_context,
    create_ca,
    issue_client_certificate,
    issue_server_certificate,
    server_ssl_context,
)
from common.crypto.canonical import canonical_json
from common.crypto.encoding import b64url_decode, b64url_encode
from common.crypto.kdf import constant_time_equal, derive_key, hmac_sha256, sha256
from common.crypto.keys import (
    SealingKey,
    SealPublicKey,
    SigningKey,
    VerifyKey,
    load_private_key_pem,
    save_private_key,
)
from common.crypto.sealing import open_sealed, seal
from common.crypto.signed_requests import (
    KEY_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    refused_request,
    sign_request,
    verify_request,
)

__all__ = [
    "KEY_HEADER",
    "NONCE_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "CertificateAuthority",
    "SealPublicKey",
    "SealingKey",
    "SigningKey",
    "VerifyKey",
    "agree_key",
    "b64url_decode",
    "b64url_encode",
    "canonical_json",
    "certificate_fingerprint",
    "client_ssl_context",
    "constant_time_equal",
    "create_ca",
    "derive_key",
    "hmac_sha256",
    "issue_client_certificate",
    "issue_server_certificate",
    "load_private_key_pem",
    "open_sealed",
    "refused_request",
    "save_private_key",
    "seal",
    "server_ssl_context",
    "sha256",
    "sign_request",
    "verify_request",
]
