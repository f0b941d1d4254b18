"""CloudTrail records built from a service model's input shape (for tests, replay and benchmarks).

:func:`synth_request` fills an operation's required members (placeholders chosen by member name and
shape type) and puts a given instance type at one coverage path, nested exactly where the model
puts it. Two spellings are produced, as CloudTrail records them:

- ``cloudtrail``: lowerCamel member names (the EC2 ``locationName``), EC2 lists as
  ``{"<name>Set": {"items": [...]}}``;
- ``wrapped``: model member names verbatim; for EC2 inside an ``<Operation>Request`` object with
  one-element lists flattened to an object carrying ``"tag": 1`` (the newer EC2 APIs' spelling).
"""

from __future__ import annotations

import re
from typing import Any

from enforcer.coverage.walker import load_model

_SEG = re.compile(r"^([^\[\]{}]+)((?:\[\]|\{\})*)$")
_MAX_DEPTH = 12
PLACEHOLDER_ID = "i-0123456789abcdef0"


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:] if name else name


def _placeholder(name: str, shape: dict[str, Any]) -> Any:
    kind = shape.get("type")
    low = name.lower()
    if kind == "string":
        if shape.get("enum"):
            return shape["enum"][0]
        if low.endswith("instanceid"):
            return PLACEHOLDER_ID
        if low.endswith("arn"):
            return "arn:aws:iam::111122223333:role/example"
        return "example"
    if kind in ("integer", "long"):
        return max(1, int(shape.get("min", 1)))
    if kind in ("float", "double"):
        return 1.0
    if kind == "boolean":
        return False
    if kind == "timestamp":
        return "2026-12-01T00:00:00Z"
    if kind == "blob":
        return "ZXhhbXBsZQ=="
    return "example"


class _Builder:
    def __init__(self, model: dict[str, Any], style: str, benign: str) -> None:
        self.shapes: dict[str, dict[str, Any]] = model["shapes"]
        self.ec2 = model.get("metadata", {}).get("protocol") == "ec2"
        self.style = style
        self.benign = benign

    def key(self, name: str, ref: dict[str, Any]) -> str:
        if self.style == "wrapped":
            return name
        return _lower_camel(str(ref.get("locationName") or name)) if self.ec2 else _lower_camel(name)

    def wrap_list(self, key: str, items: list[Any]) -> tuple[str, Any]:
        if not self.ec2:
            return key, items
        if self.style == "wrapped":
            if len(items) == 1 and isinstance(items[0], dict):
                items[0]["tag"] = 1  # in place: the caller keeps filling this object
                return key, items[0]
            return key, items
        return (key if key.endswith("Set") else key + "Set"), {"items": items}

    def value(self, shape_name: str, member: str, depth: int) -> Any:
        shape = self.shapes[shape_name]
        kind = shape.get("type")
        if kind == "structure":
            return self.required(shape_name, depth + 1)
        if kind == "list":
            return [self.value(shape["member"]["shape"], member, depth + 1)]
        if kind == "map":
            return {}
        return _placeholder(member, shape)

    def required(self, shape_name: str, depth: int) -> dict[str, Any]:
        shape = self.shapes[shape_name]
        out: dict[str, Any] = {}
        if depth > _MAX_DEPTH:
            return out
        wanted = list(shape.get("required", []))
        # "either an id or a name" is documented, not modelled: name launch templates
        wanted += [
            n
            for n in shape.get("members", {})
            if n.lower() in ("launchtemplatename", "launchtemplatespecification") and n not in wanted
        ]
        for name in wanted:
            ref = shape["members"][name]
            self.put(out, name, ref, self.filler(name, ref, depth))
        return out

    def filler(self, name: str, ref: dict[str, Any], depth: int) -> Any:
        target = self.shapes[ref["shape"]]
        if "instancetype" in name.lower():  # another required type member: a type without accelerators
            return [self.benign] if target.get("type") == "list" else self.benign
        return self.value(ref["shape"], name, depth)

    def put(self, out: dict[str, Any], name: str, ref: dict[str, Any], value: Any) -> None:
        key = self.key(name, ref)
        if isinstance(value, list) and self.shapes[ref["shape"]].get("type") == "list":
            key, value = self.wrap_list(key, value)
        out[key] = value

    def place(self, root: str, path: str, itype: str) -> dict[str, Any]:
        """The required members of ``root`` plus ``itype`` at ``path`` (creating what lies between)."""
        segs = path.split(".")
        out = self.required(root, 0)
        node = out
        shape_name = root
        for i, seg in enumerate(segs):
            m = _SEG.match(seg)
            if m is None:
                raise ValueError(f"bad path segment {seg!r}")
            name, suffix = m.group(1), m.group(2)
            ref = self.shapes[shape_name]["members"][name]
            last = i == len(segs) - 1
            target = self.shapes[ref["shape"]]
            if last:
                val: Any = [itype] if target.get("type") == "list" else itype
                self.put(node, name, ref, val)
                break
            # descend through structures, lists ([]) and maps ({})
            inner_name = ref["shape"]
            wrappers: list[str] = []
            for s in re.findall(r"\[\]|\{\}", suffix):
                inner = self.shapes[inner_name]
                inner_name = inner["member"]["shape"] if s == "[]" else inner["value"]["shape"]
                wrappers.append(s)
            child = self.required(inner_name, i + 1)
            val = child
            for s in reversed(wrappers):
                val = [val] if s == "[]" else {"key": val}
            self.put(node, name, ref, val)
            node = child
            shape_name = inner_name
        return out


def synth_request(
    service: str, operation: str, path: str, itype: str, style: str = "cloudtrail", benign: str = "m5.large"
) -> dict[str, Any]:
    """``requestParameters`` for ``service:operation`` with ``itype`` at coverage ``path``.

    Parameters
    ----------
    service, operation
        botocore service name and operation name.
    path
        A coverage path (``ResourceConfig.InstancePreferences[].InstanceType``).
    itype
        The instance type to place there.
    style
        ``cloudtrail`` or ``wrapped`` (see the module docstring).
    benign
        The type put in other required instance-type members.
    """
    model = load_model(service)
    op = model["operations"][operation]
    b = _Builder(model, style, benign)
    params = b.place(op["input"]["shape"], path, itype)
    if b.ec2 and style == "wrapped":
        return {f"{operation}Request": params}
    return params


def synth_record(
    event_source: str, operation: str, params: dict[str, Any], account: str, region: str = "us-east-1"
) -> dict[str, Any]:
    """A successful CloudTrail record around ``params`` (as found in a log file's ``Records``)."""
    return {
        "eventVersion": "1.09",
        "userIdentity": {
            "type": "AssumedRole",
            "accountId": account,
            "arn": f"arn:aws:sts::{account}:assumed-role/dev/alice",
        },
        "eventTime": "2026-12-01T00:00:00Z",
        "eventSource": event_source,
        "eventName": operation,
        "awsRegion": region,
        "sourceIPAddress": "198.51.100.7",
        "userAgent": "aws-cli/2.15",
        "requestParameters": params,
        "responseElements": None,
        "eventID": f"synth-{operation}",
        "readOnly": False,
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": account,
    }
