"""Where the local audit store keeps its key material, and a one-call constructor.

Under the CLI state directory (``enforcer.state.CliState``):

- ``keys/audit-checkpoint-ed25519.pem``: checkpoint signing key (Ed25519, PKCS#8, mode 0600),
  created on first use; ``keys/audit-checkpoint-ed25519.pub.pem``: its public key, the one to
  hand to auditors (``enforcer audit pubkey`` prints it).
- ``keys/audit-salt.key``: the secret salt for masking personal data (mode 0600). It lives with
  the keys, not in the log directory, so readers of the log cannot brute-force masked names.
- ``audit/``: the log itself (see ``enforcer.audit.layout``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from enforcer.audit.local import LocalAuditStore, load_salt
from enforcer.audit.signing import LocalEd25519Signer, public_key_path

AUDIT_KEY_NAME = "audit-checkpoint-ed25519.pem"
SALT_NAME = "audit-salt.key"


def audit_key_path(keys_dir: str | os.PathLike[str]) -> Path:
    """Return the path of the checkpoint signing key in ``keys_dir``."""
    return Path(keys_dir) / AUDIT_KEY_NAME


def local_signer(keys_dir: str | os.PathLike[str]) -> LocalEd25519Signer:
    """Return the local checkpoint signer (creating its key when absent)."""
    return LocalEd25519Signer(audit_key_path(keys_dir))


def default_public_key(keys_dir: str | os.PathLike[str]) -> bytes | None:
    """Return the checkpoint public key PEM from ``keys_dir`` (None when there is no key yet).

    The exported ``.pub.pem`` is preferred; otherwise it is derived from the private key.
    """
    pub = public_key_path(audit_key_path(keys_dir))
    if pub.is_file():
        return pub.read_bytes()
    priv = audit_key_path(keys_dir)
    if priv.is_file():
        try:
            key = serialization.load_pem_private_key(priv.read_bytes(), password=None)
        except (ValueError, TypeError):
            return None
        return key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    return None


def open_local_store(
    audit_dir: str | os.PathLike[str], keys_dir: str | os.PathLike[str], **kwargs: Any
) -> LocalAuditStore:
    """Open the local store with the checkpoint signer and masking salt from ``keys_dir``.

    Parameters
    ----------
    audit_dir
        The log directory (``CliState.audit_dir``).
    keys_dir
        The key directory (``CliState.keys_dir``).
    **kwargs
        Passed to ``LocalAuditStore`` (``checkpoint_every``, ``segment_max_bytes``, ``fsync``…).
    """
    keys = Path(keys_dir)
    keys.mkdir(parents=True, exist_ok=True, mode=0o700)
    return LocalAuditStore(audit_dir, local_signer(keys), salt=load_salt(keys / SALT_NAME), **kwargs)
