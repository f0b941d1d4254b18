"""File-backed reseller registry under ``STATE/registry/``.

Layout::

    registry/resellers.json                 {"generation": N, "resellers": [...], "trust": {...}}
    registry/attestations/<account>.json    {"attestations": [...]}

Writes are atomic (temp file + rename) under an exclusive lock file; reads are cached per file
and re-read when the file's stat changes, so hand edits are seen too.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from enforcer.attestation.registry import (
    CLIENT_AUTH_EKU,
    RegistryError,
    Reseller,
    ResellerKey,
    StoredAttestation,
    TrustConfig,
    check_account,
    check_id,
    merge_crl,
    newest_first,
)

MAX_FILE_BYTES = 16 * 1024 * 1024


class LocalRegistry:
    """An :class:`~enforcer.attestation.registry.AttestationRegistry` on local files.

    Parameters
    ----------
    path
        The registry directory (``CliState.registry_dir``); created on first write.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        # file -> (stat signature, raw JSON document, parsed views of that document version)
        self._cache: dict[Path, tuple[tuple[int, int, int], Any, dict[str, Any]]] = {}

    # -- file plumbing -------------------------------------------------------------------------
    @property
    def _resellers_file(self) -> Path:
        return self.path / "resellers.json"

    def _attestations_file(self, account_id: str) -> Path:
        return self.path / "attestations" / f"{check_account(account_id)}.json"

    def _read(self, file: Path, default: Any) -> Any:
        return self._entry(file, default)[1]

    def _entry(self, file: Path, default: Any) -> tuple[Any, Any, dict[str, Any]]:
        try:
            st = file.stat()
        except FileNotFoundError:
            self._cache.pop(file, None)
            return (None, default, {})
        sig = (st.st_mtime_ns, st.st_size, st.st_ino)
        hit = self._cache.get(file)
        if hit is not None and hit[0] == sig:
            return hit
        if st.st_size > MAX_FILE_BYTES:
            raise RegistryError(f"{file} is larger than {MAX_FILE_BYTES} bytes")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RegistryError(f"cannot read {file}: {exc}") from exc
        if not isinstance(data, dict):
            raise RegistryError(f"{file} is not a JSON object")
        entry: tuple[Any, Any, dict[str, Any]] = (sig, data, {})
        self._cache[file] = entry
        return entry

    def _memo(self, file: Path, what: str, default: Any, parse: Any) -> Any:
        """Return ``parse(document)``, computed once per version of ``file``."""
        _, raw, views = self._entry(file, default)
        if what not in views:
            views[what] = parse(raw)
        return views[what]

    def _write(self, file: Path, data: Any) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=2, sort_keys=True)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, file)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        self._cache.pop(file, None)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _doc(self) -> dict[str, Any]:
        doc = self._read(self._resellers_file, {})
        return {
            "generation": int(doc.get("generation", 0)),
            "resellers": list(doc.get("resellers", [])),
            "trust": dict(doc.get("trust", {})),
        }

    def _resellers(self) -> dict[str, Reseller]:
        def parse(doc: Any) -> dict[str, Reseller]:
            try:
                items = [Reseller.from_dict(r) for r in doc.get("resellers", [])]
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RegistryError(f"malformed {self._resellers_file}: {exc}") from exc
            return {r.reseller_id: r for r in items}

        return dict(self._memo(self._resellers_file, "resellers", {}, parse))

    def _save_resellers(self, doc: dict[str, Any], resellers: dict[str, Reseller]) -> None:
        doc["generation"] = int(doc["generation"]) + 1
        doc["resellers"] = [r.to_dict() for r in sorted(resellers.values(), key=lambda r: r.reseller_id)]
        self._write(self._resellers_file, doc)

    # -- resellers and keys --------------------------------------------------------------------
    def get_reseller(self, reseller_id: str) -> Reseller | None:
        """Return the reseller or None."""
        return self._resellers().get(reseller_id)

    def list_resellers(self) -> list[Reseller]:
        """Return every reseller, sorted by id."""
        return sorted(self._resellers().values(), key=lambda r: r.reseller_id)

    def put_reseller(
        self,
        reseller_id: str,
        name: str | None = None,
        country: str | None = None,
        *,
        hq_country: str | None = None,
        parent_hq_country: str | None = None,
        status: str | None = None,
    ) -> Reseller:
        """Create the reseller or update the fields given (None keeps the stored value)."""
        check_id(reseller_id, "reseller id")
        with self._locked():
            doc = self._doc()
            resellers = self._resellers()
            old = resellers.get(reseller_id) or Reseller(reseller_id)
            new = replace(
                old,
                name=name if name is not None else old.name,
                country=country if country is not None else old.country,
                hq_country=hq_country if hq_country is not None else old.hq_country,
                parent_hq_country=parent_hq_country
                if parent_hq_country is not None
                else old.parent_hq_country,
                status=status if status is not None else old.status,
                keys=dict(old.keys),
            )
            resellers[reseller_id] = new
            self._save_resellers(doc, resellers)
            return new

    def add_key(self, reseller_id: str, key: ResellerKey) -> None:
        """Add a key to an existing reseller (kid must be new for that reseller)."""
        with self._locked():
            doc = self._doc()
            resellers = self._resellers()
            r = resellers.get(reseller_id)
            if r is None:
                raise RegistryError(f"unknown reseller {reseller_id!r}")
            if key.kid in r.keys:
                raise RegistryError(f"reseller {reseller_id!r} already has a key {key.kid!r}")
            resellers[reseller_id] = r.with_key(key)
            self._save_resellers(doc, resellers)

    def revoke_key(self, reseller_id: str, kid: str, at: float) -> None:
        """Mark a key revoked (idempotent for an already revoked key)."""
        with self._locked():
            doc = self._doc()
            resellers = self._resellers()
            r = resellers.get(reseller_id)
            if r is None or kid not in r.keys:
                raise RegistryError(f"reseller {reseller_id!r} has no key {kid!r}")
            k = r.keys[kid]
            if k.status != "revoked":
                resellers[reseller_id] = r.with_key(replace(k, status="revoked", revoked_at=at))
            self._save_resellers(doc, resellers)

    def revocation_generation(self) -> str:
        """An opaque value that changes with every key/trust change (and any edit of the file)."""
        try:
            st = self._resellers_file.stat()
        except FileNotFoundError:
            return "0"
        generation = self._read(self._resellers_file, {}).get("generation", 0)
        return f"{generation}:{st.st_mtime_ns}:{st.st_size}:{st.st_ino}"

    # -- CA trust ------------------------------------------------------------------------------
    def trust(self) -> TrustConfig:
        """The operator CA anchors and revoked certificate serials."""
        t = self._doc()["trust"]
        try:
            return TrustConfig(
                anchors=tuple(str(a) for a in t.get("anchors", [])),
                revoked_serials=frozenset(int(s) for s in t.get("revoked_serials", [])),
                revoked_certs=frozenset((str(i), int(n)) for i, n in t.get("revoked_certs", [])),
                crls=tuple(str(c) for c in t.get("crls", [])),
                required_eku=str(t.get("required_eku") or CLIENT_AUTH_EKU),
            )
        except (TypeError, ValueError) as exc:
            raise RegistryError(f"malformed trust section in {self._resellers_file}") from exc

    def add_trust_anchor(self, pem: str) -> None:
        """Trust an operator CA certificate (PEM) for ``x5c``-certified reseller keys."""
        with self._locked():
            doc = self._doc()
            anchors = list(doc["trust"].get("anchors", []))
            if pem not in anchors:
                anchors.append(pem)
            doc["trust"]["anchors"] = anchors
            self._save_resellers(doc, self._resellers())

    def revoke_certificate(self, issuer: str, serial: int) -> None:
        """Stop accepting the certificate ``serial`` issued by ``issuer`` (RFC 4514 DN)."""
        with self._locked():
            doc = self._doc()
            entries = [list(e) for e in doc["trust"].get("revoked_certs", [])]
            if [issuer, int(serial)] not in entries:
                entries.append([issuer, int(serial)])
            doc["trust"]["revoked_certs"] = entries
            self._save_resellers(doc, self._resellers())

    def add_crl(self, pem: str) -> None:
        """Store a CRL (PEM); a newer CRL of the same issuer replaces the older one."""
        with self._locked():
            doc = self._doc()
            doc["trust"]["crls"] = merge_crl(list(doc["trust"].get("crls", [])), pem)
            self._save_resellers(doc, self._resellers())

    def revoke_serial(self, serial: int) -> None:
        """Stop accepting certificates with this serial number."""
        with self._locked():
            doc = self._doc()
            serials = {str(s) for s in doc["trust"].get("revoked_serials", [])}
            serials.add(str(int(serial)))
            doc["trust"]["revoked_serials"] = sorted(serials)
            self._save_resellers(doc, self._resellers())

    # -- attestations --------------------------------------------------------------------------
    def _load_attestations(self, account_id: str) -> list[StoredAttestation]:
        file = self._attestations_file(account_id)

        def parse(doc: Any) -> list[StoredAttestation]:
            try:
                return newest_first([StoredAttestation.from_dict(a) for a in doc.get("attestations", [])])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise RegistryError(f"malformed {file}: {exc}") from exc

        return list(self._memo(file, "attestations", {}, parse))

    def put_attestation(self, att: StoredAttestation) -> bool:
        """Store an attestation; False if this exact token is already stored."""
        with self._locked():
            items = self._load_attestations(att.account_id)
            for a in items:
                if a.jti == att.jti:
                    if a.token_sha256 == att.token_sha256:
                        return False
                    raise RegistryError(f"jti {att.jti!r} is already used by another token for this account")
            items.append(att)
            self._write(
                self._attestations_file(att.account_id),
                {"attestations": [a.to_dict() for a in newest_first(items)]},
            )
            return True

    def attestations_for(self, account_id: str) -> list[StoredAttestation]:
        """Stored attestations of one account, newest first."""
        return self._load_attestations(account_id)

    def list_attestations(self, account_id: str | None = None) -> list[StoredAttestation]:
        """Stored attestations of one account, or of all accounts (sorted by account, newest first)."""
        if account_id is not None:
            return self.attestations_for(account_id)
        folder = self.path / "attestations"
        out: list[StoredAttestation] = []
        if folder.is_dir():
            for f in sorted(folder.glob("*.json")):
                if f.stem.isdigit() and len(f.stem) == 12:
                    out.extend(self.attestations_for(f.stem))
        return out
