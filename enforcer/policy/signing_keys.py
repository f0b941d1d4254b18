"""Keys of policy signing: EC P-256 (``ES256``) or Ed25519 (``EdDSA``), the algorithm pinned by key type."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc.jwk import ECKey, OKPKey

from enforcer.policy.file_hash import PolicySignatureError

MAX_PEM_BYTES = 16 * 1024
KID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}\Z")

JoseKey = ECKey | OKPKey


def pem_bytes(pem: bytes | str) -> bytes:
    """The PEM as bytes, refused above ``MAX_PEM_BYTES``."""
    data = pem.encode() if isinstance(pem, str) else bytes(pem)
    if len(data) > MAX_PEM_BYTES:
        raise PolicySignatureError(f"key PEM larger than {MAX_PEM_BYTES} bytes")
    return data


def private_key(pem: bytes | str) -> tuple[str, JoseKey]:
    """``(alg, key)`` of an unencrypted PEM signing key; only ES256 and EdDSA keys are accepted."""
    data = pem_bytes(pem)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise PolicySignatureError(f"not an unencrypted PEM private key ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", ECKey.import_key(data)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA", OKPKey.import_key(data)
    raise PolicySignatureError("signing key must be EC P-256 (ES256) or Ed25519 (EdDSA)")


def public_key(pem: bytes | str) -> tuple[str, JoseKey]:
    """``(alg, key)`` of a PEM verification key; only ES256 and EdDSA keys are accepted."""
    data = pem_bytes(pem)
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise PolicySignatureError(f"not a PEM public key ({exc})") from exc
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return "ES256", ECKey.import_key(data)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "EdDSA", OKPKey.import_key(data)
    raise PolicySignatureError("verification key must be EC P-256 (ES256) or Ed25519 (EdDSA)")


def read_public_key_setting(value: str) -> bytes:
    """Resolve ``ENFORCER_POLICY_PUBKEY``: inline PEM text, or the path of a PEM file.

    Raises
    ------
    PolicySignatureError
        When the file cannot be read.
    """
    if value.lstrip().startswith("-----BEGIN"):
        return pem_bytes(value)
    path = Path(value)
    try:
        if path.stat().st_size > MAX_PEM_BYTES:
            raise PolicySignatureError(f"key file larger than {MAX_PEM_BYTES} bytes", str(path))
        return path.read_bytes()
    except OSError as exc:
        raise PolicySignatureError(f"cannot read policy public key ({exc.strerror})", str(path)) from exc
