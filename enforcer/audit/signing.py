"""Signed checkpoints over the chain head.

A checkpoint is ``{seq, hash, timestamp, key_id, alg, signature}``: it says "record ``seq`` of this
log has hash ``hash``", signed. The signed message is::

    b"gpu-launch-enforcer/audit-checkpoint/v1\\n" + rfc8785({alg, hash, key_id, seq, timestamp})

``signature`` is standard base64. Algorithms are pinned: ``EdDSA`` (Ed25519, raw 64-byte
signature) or ``ES256`` (ECDSA P-256 + SHA-256, DER signature as AWS KMS returns it). The
verifier takes the algorithm from the public key it is given, never from the checkpoint.

``key_id`` is the key's fingerprint: ``"sha256:"`` + the first 32 hex digits of SHA-256 over the
DER SubjectPublicKeyInfo, so anyone holding the public PEM can check it offline.

Signers:

- ``LocalEd25519Signer(key_path)``: creates an Ed25519 key at ``key_path`` (PKCS#8 PEM, mode
  0600) when absent and exports the public key beside it as ``<key_path minus .pem>.pub.pem``.
- ``KmsSigner(kms_client, key_id)``: an AWS KMS asymmetric key (key spec ``ECC_NIST_P256``,
  ``SigningAlgorithm=ECDSA_SHA_256``, ``MessageType=RAW``); its public key comes from
  ``GetPublicKey``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from enforcer.audit.jcs import canonical

CHECKPOINT_CONTEXT = b"gpu-launch-enforcer/audit-checkpoint/v1\n"
#: Largest public key PEM accepted.
MAX_PEM_BYTES = 16 * 1024
_SIG_MAX_B64 = 256
_CHECKPOINT_FIELDS = ("seq", "hash", "timestamp", "key_id", "alg", "signature")


class SignerError(RuntimeError):
    """A checkpoint could not be signed (missing key, KMS failure)."""


class CheckpointError(ValueError):
    """A checkpoint is malformed, signed with another key, or its signature does not verify."""


@runtime_checkable
class Signer(Protocol):
    """Signs checkpoint messages."""

    key_id: str
    alg: str

    def sign(self, message: bytes) -> bytes:
        """Return the signature of ``message``; raise SignerError on failure."""
        ...

    def public_key_pem(self) -> bytes:
        """Return the public key as SubjectPublicKeyInfo PEM."""
        ...


def key_fingerprint(public_key_pem: bytes) -> str:
    """Return the ``key_id`` of a public key: ``sha256:`` + 32 hex digits over its DER SPKI.

    Raises
    ------
    CheckpointError
        When the PEM is not a public key.
    """
    key = load_public_key(public_key_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(der).hexdigest()[:32]


def load_public_key(public_key_pem: bytes) -> ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey:
    """Load a checkpoint public key, accepting only Ed25519 and EC P-256.

    Raises
    ------
    CheckpointError
        When the PEM is too large, not a public key, or of another type.
    """
    if len(public_key_pem) > MAX_PEM_BYTES:
        raise CheckpointError("public key PEM too large")
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"not a PEM public key: {exc}") from exc
    if isinstance(key, ed25519.Ed25519PublicKey):
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    raise CheckpointError("checkpoint keys must be Ed25519 or ECDSA P-256")


def _alg_of(key: ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey) -> str:
    return "EdDSA" if isinstance(key, ed25519.Ed25519PublicKey) else "ES256"


def checkpoint_message(seq: int, hash_hex: str, timestamp: str, key_id: str, alg: str) -> bytes:
    """Return the exact bytes a checkpoint signature covers."""
    body = {"alg": alg, "hash": hash_hex, "key_id": key_id, "seq": seq, "timestamp": timestamp}
    return CHECKPOINT_CONTEXT + canonical(body)


def make_checkpoint(signer: Signer, seq: int, hash_hex: str, timestamp: str) -> dict[str, Any]:
    """Sign the chain head and return the checkpoint object.

    Parameters
    ----------
    signer
        The checkpoint signer.
    seq
        Sequence number of the head record.
    hash_hex
        Its hash.
    timestamp
        RFC 3339 time of signing.

    Raises
    ------
    SignerError
        When signing fails.
    """
    from enforcer.jws import ALGORITHMS  # joserfc: loaded by the first seal, not by a cold start's write

    if signer.alg not in ALGORITHMS:
        raise SignerError(f"unsupported checkpoint algorithm {signer.alg!r}")
    msg = checkpoint_message(seq, hash_hex, timestamp, signer.key_id, signer.alg)
    sig = signer.sign(msg)
    return {
        "seq": seq,
        "hash": hash_hex,
        "timestamp": timestamp,
        "key_id": signer.key_id,
        "alg": signer.alg,
        "signature": base64.b64encode(sig).decode("ascii"),
    }


def check_checkpoint_shape(cp: Any) -> dict[str, Any]:
    """Validate the fields of a checkpoint object (not its signature).

    Raises
    ------
    CheckpointError
        When a field is missing or of the wrong type.
    """
    if not isinstance(cp, dict):
        raise CheckpointError("checkpoint is not a JSON object")
    missing = [f for f in _CHECKPOINT_FIELDS if f not in cp]
    if missing:
        raise CheckpointError(f"checkpoint lacks {', '.join(missing)}")
    seq = cp["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise CheckpointError("checkpoint seq is not a non-negative integer")
    h = cp["hash"]
    if not isinstance(h, str) or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise CheckpointError("checkpoint hash is not 64 hex digits")
    for f in ("timestamp", "key_id", "alg", "signature"):
        if not isinstance(cp[f], str):
            raise CheckpointError(f"checkpoint {f} is not a string")
    if len(cp["signature"]) > _SIG_MAX_B64:
        raise CheckpointError("checkpoint signature too long")
    return cp


def verify_checkpoint(cp: Any, public_key_pem: bytes) -> None:
    """Check a checkpoint's signature offline against the expected public key.

    Parameters
    ----------
    cp
        The checkpoint object.
    public_key_pem
        The expected checkpoint public key (SubjectPublicKeyInfo PEM).

    Raises
    ------
    CheckpointError
        When the checkpoint is malformed, names another key or algorithm, or does not verify.
    """
    check_checkpoint_shape(cp)
    key = load_public_key(public_key_pem)
    alg = _alg_of(key)
    kid = key_fingerprint(public_key_pem)
    if cp["alg"] != alg:
        raise CheckpointError(f"checkpoint alg {cp['alg']!r} does not match the key ({alg})")
    if cp["key_id"] != kid:
        raise CheckpointError(f"checkpoint signed by key {cp['key_id']!r}, expected {kid!r}")
    try:
        sig = base64.b64decode(cp["signature"], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CheckpointError("checkpoint signature is not base64") from exc
    msg = checkpoint_message(cp["seq"], cp["hash"], cp["timestamp"], cp["key_id"], cp["alg"])
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig, msg)
        else:
            key.verify(sig, msg, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise CheckpointError("checkpoint signature does not verify") from exc


class LocalEd25519Signer:
    """Ed25519 checkpoint signer with a key file on local disk.

    Parameters
    ----------
    key_path
        PKCS#8 PEM private key; created (mode 0600, parent directories 0700) when absent.
        The public key is written beside it as ``<name>.pub.pem``.
    """

    alg = "EdDSA"

    def __init__(self, key_path: str | os.PathLike[str]) -> None:
        self.key_path = Path(key_path)
        self._key = self._load_or_create()
        self.key_id = key_fingerprint(self.public_key_pem())
        pub = public_key_path(self.key_path)
        if not pub.exists() or pub.read_bytes() != self.public_key_pem():
            pub.write_bytes(self.public_key_pem())

    def _load_or_create(self) -> ed25519.Ed25519PrivateKey:
        p = self.key_path
        if p.exists():
            try:
                key = serialization.load_pem_private_key(p.read_bytes(), password=None)
            except (ValueError, TypeError, OSError) as exc:
                raise SignerError(f"cannot load audit signing key {p}: {exc}") from exc
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise SignerError(f"audit signing key {p} is not an Ed25519 key")
            return key
        p.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ed25519.Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return self._load_or_create()
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return key

    def sign(self, message: bytes) -> bytes:
        """Return the Ed25519 signature of ``message``."""
        return self._key.sign(message)

    def public_key_pem(self) -> bytes:
        """Return the public key (SubjectPublicKeyInfo PEM)."""
        return self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def public_key_path(key_path: str | os.PathLike[str]) -> Path:
    """Return where the public key of ``key_path`` is exported (``x.pem`` -> ``x.pub.pem``)."""
    p = Path(key_path)
    name = p.name[:-4] if p.name.endswith(".pem") else p.name
    return p.with_name(name + ".pub.pem")


class KmsSigner:
    """Checkpoint signer backed by an AWS KMS key (ECC_NIST_P256, ECDSA_SHA_256, RAW messages).

    Parameters
    ----------
    kms_client
        A boto3 KMS client (passed in, never created here).
    key_id
        KMS key id, ARN or alias.
    """

    alg = "ES256"

    def __init__(self, kms_client: Any, key_id: str) -> None:
        self._kms = kms_client
        self.kms_key_id = key_id
        try:
            resp = kms_client.get_public_key(KeyId=key_id)
        except Exception as exc:  # botocore errors of any kind
            raise SignerError(f"cannot read KMS public key {key_id}: {exc}") from exc
        spec = resp.get("KeySpec") or resp.get("CustomerMasterKeySpec")
        if spec != "ECC_NIST_P256":
            raise SignerError(f"KMS key {key_id} has key spec {spec!r}, expected ECC_NIST_P256")
        if "ECDSA_SHA_256" not in resp.get("SigningAlgorithms", []):
            raise SignerError(f"KMS key {key_id} cannot sign with ECDSA_SHA_256")
        der = resp["PublicKey"]
        key = serialization.load_der_public_key(der)
        self._pem = key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = key_fingerprint(self._pem)

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` with KMS (RAW, ECDSA_SHA_256); the DER signature is returned."""
        if len(message) > 4096:
            raise SignerError("checkpoint message exceeds the KMS RAW limit of 4096 bytes")
        try:
            resp = self._kms.sign(
                KeyId=self.kms_key_id,
                Message=message,
                MessageType="RAW",
                SigningAlgorithm="ECDSA_SHA_256",
            )
        except Exception as exc:  # botocore errors of any kind
            raise SignerError(f"KMS sign failed: {exc}") from exc
        sig = resp.get("Signature")
        if not isinstance(sig, bytes):
            raise SignerError("KMS returned no signature")
        return sig

    def public_key_pem(self) -> bytes:
        """Return the KMS key's public key (SubjectPublicKeyInfo PEM)."""
        return self._pem
