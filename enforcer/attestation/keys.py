"""Reseller signing keys: generation, loading and the key-type -> algorithm pin.

Only two key types are accepted: EC P-256 (``ES256``) and Ed25519 (``EdDSA``). The algorithm of
a key is derived from its type, never from a token.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from joserfc.jwk import ECKey, OKPKey

from enforcer.attestation.constants import ALGORITHMS
from enforcer.model import InputError

JoseKey = ECKey | OKPKey

#: Largest PEM we will parse (a P-256 or Ed25519 key is a few hundred bytes).
MAX_PEM_BYTES = 16 * 1024


class AttestationKeyError(InputError):
    """A key file is unreadable, of the wrong type, or does not fit the requested algorithm."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code="BAD_KEY")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """A private key ready for signing, with its pinned algorithm."""

    algorithm: str
    key: JoseKey
    public_pem: str


@dataclass(frozen=True, slots=True)
class VerifyingKey:
    """A public key ready for verification, with its pinned algorithm."""

    algorithm: str
    key: JoseKey


def generate_private_key_pem(algorithm: str = "ES256") -> bytes:
    """Generate a new private key for ``algorithm`` as unencrypted PKCS#8 PEM.

    Parameters
    ----------
    algorithm
        ``ES256`` (EC P-256) or ``EdDSA`` (Ed25519).

    Returns
    -------
    bytes
        The private key PEM.

    Raises
    ------
    AttestationKeyError
        For any other algorithm.
    """
    priv: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == "ES256":
        priv = ec.generate_private_key(ec.SECP256R1())
    elif algorithm == "EdDSA":
        priv = ed25519.Ed25519PrivateKey.generate()
    else:
        raise AttestationKeyError(f"unsupported algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}")
    return priv.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _check_size(pem: bytes) -> None:
    if len(pem) > MAX_PEM_BYTES:
        raise AttestationKeyError(f"key file larger than {MAX_PEM_BYTES} bytes")


def algorithm_for(key: object) -> str:
    """Return the pinned JWS algorithm for a ``cryptography`` key object.

    Raises
    ------
    AttestationKeyError
        When the key is neither EC P-256 nor Ed25519.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1):
            raise AttestationKeyError(f"EC key on curve {key.curve.name}; only P-256 (ES256) is accepted")
        return "ES256"
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "EdDSA"
    raise AttestationKeyError(f"unsupported key type {type(key).__name__}; use EC P-256 or Ed25519")


def _jose(key: object) -> JoseKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return ECKey.import_key(key)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return OKPKey.import_key(key)
    raise AttestationKeyError(
        f"unsupported key type {type(key).__name__}"
    )  # pragma: no cover - algorithm_for first


def public_pem_of(key: ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey) -> str:
    """Return the SubjectPublicKeyInfo PEM of a public key."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_signing_key(pem: bytes) -> SigningKey:
    """Load an unencrypted private key PEM (P-256 or Ed25519) and pin its algorithm.

    Raises
    ------
    AttestationKeyError
        When the PEM is not a private key of an accepted type.
    """
    _check_size(pem)
    try:
        priv = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AttestationKeyError("not an unencrypted PEM private key") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for exotic keys
        raise AttestationKeyError(f"unreadable private key: {type(exc).__name__}") from exc
    alg = algorithm_for(priv)
    assert isinstance(priv, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey)
    return SigningKey(alg, _jose(priv), public_pem_of(priv.public_key()))


def load_public_key_pem(pem: bytes | str) -> tuple[str, str]:
    """Validate a public key PEM and return ``(algorithm, normalised_pem)``.

    Raises
    ------
    AttestationKeyError
        When the PEM is not a public key of an accepted type (a private key is refused too).
    """
    data = pem.encode("ascii", "replace") if isinstance(pem, str) else pem
    _check_size(data)
    try:
        pub = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise AttestationKeyError("not a PEM public key (SubjectPublicKeyInfo)") from exc
    except Exception as exc:
        raise AttestationKeyError(f"unreadable public key: {type(exc).__name__}") from exc
    alg = algorithm_for(pub)
    assert isinstance(pub, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey)
    return alg, public_pem_of(pub)


def verifying_key(pem: str, algorithm: str) -> VerifyingKey:
    """Build a verification key from a registered PEM, checking it matches the registered algorithm.

    Raises
    ------
    AttestationKeyError
        When the PEM is unreadable or its type does not match ``algorithm``.
    """
    alg, _ = load_public_key_pem(pem)
    if alg != algorithm:
        raise AttestationKeyError(f"registered key is {alg} but registered algorithm is {algorithm}")
    pub = serialization.load_pem_public_key(pem.encode("ascii"))
    return VerifyingKey(alg, _jose(pub))


def verifying_key_from(key: object) -> VerifyingKey:
    """Build a verification key from a ``cryptography`` public key object (e.g. an X.509 leaf's key)."""
    alg = algorithm_for(key)
    return VerifyingKey(alg, _jose(key))
