"""Load a policy directory like OPA: ``*.rego`` modules plus ``data.json`` files mounted at their path.

``policies/gpu/config/data.json`` becomes ``data.gpu.config``. The revision is a SHA-256 over every file's
relative path and bytes, so any change to logic or data changes the revision recorded in each decision.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enforcer.model import InputError

MAX_POLICY_BYTES = 4 * 1024 * 1024


@dataclass(slots=True)
class PolicyBundle:
    """Rego modules and data documents read from one directory."""

    root: Path
    modules: dict[str, str] = field(default_factory=dict)
    tests: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    data_files: dict[str, Any] = field(default_factory=dict)
    revision: str = ""


def _mount(tree: dict[str, Any], parts: list[str], value: Any) -> None:
    node = tree
    for p in parts:
        node = node.setdefault(p, {})
    if not isinstance(value, dict):
        raise InputError(f"data.json at {'/'.join(parts)} must be a JSON object", "POLICY_LOAD_ERROR")
    node.update(value)


def load_bundle(root: Path | str) -> PolicyBundle:
    """Read ``root`` into a PolicyBundle.

    Parameters
    ----------
    root
        The policy directory (default ``policies/``).

    Raises
    ------
    InputError
        When the directory is missing, holds no module, is too large, or a data file is not JSON.
    """
    base = Path(root)
    if not base.is_dir():
        raise InputError(f"policy directory not found: {base}", "POLICY_LOAD_ERROR")
    bundle = PolicyBundle(root=base)
    digest = hashlib.sha256()
    total = 0
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).as_posix()
        if any(part.startswith(".") for part in path.relative_to(base).parts[:-1]):
            continue
        if not (path.suffix == ".rego" or path.name == "data.json"):
            continue
        raw = path.read_bytes()
        total += len(raw)
        if total > MAX_POLICY_BYTES:
            raise InputError(f"policy directory larger than {MAX_POLICY_BYTES} bytes", "POLICY_LOAD_ERROR")
        digest.update(rel.encode() + b"\0" + hashlib.sha256(raw).digest())
        if path.suffix == ".rego":
            target = bundle.tests if path.stem.endswith("_test") else bundle.modules
            target[rel] = raw.decode("utf-8")
        else:
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"{rel}: not valid JSON ({exc.msg})", "POLICY_LOAD_ERROR") from exc
            parts = list(path.parent.relative_to(base).parts)
            bundle.data_files["/".join(parts)] = value
            _mount(bundle.data, parts, value)
    if not bundle.modules:
        raise InputError(f"no Rego modules under {base}", "POLICY_LOAD_ERROR")
    bundle.revision = "sha256:" + digest.hexdigest()[:16]
    return bundle
