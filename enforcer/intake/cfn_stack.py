"""CloudFormation Lambda Hook requests for whole templates: ``STACK`` and ``CHANGE_SET`` targets.

AWS sends these without resource properties: ``requestData.payload`` is an S3 presigned URL of a
JSON object ``{"template", "previousTemplate"}`` (stack) or ``{"template", "changedResources"}``
(change set; each change's ``afterContext`` is a JSON string whose numbers and booleans are
strings). The template is JSON or YAML with CloudFormation's short-form tags (``!Ref``).
This module turns a fetched payload into one request holding every launch-bearing resource's items
(see ``enforcer.hook_payload`` for the fetch). A resource whose instance type or count is an
intrinsic function (``{"Ref": "Param"}``) cannot be decided from the template; it is listed in
``extra["deferred"]`` and decided when the RESOURCE invocation brings its resolved properties.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import yaml

from enforcer.intake.fields import Parsed, get, kind, text
from enforcer.intake.tags import find_attestation_ref
from enforcer.model import Ignored, InputError, LaunchItem, LaunchRequest
from enforcer.strict_json import DuplicateMember, reject_duplicates

TEMPLATE_TARGETS = frozenset({"STACK", "CHANGE_SET"})
#: CloudFormation allows 500 resources per template; a payload naming more is refused.
MAX_RESOURCES = 500
#: Largest template text parsed (CloudFormation's own limit for an S3 template is 1 MB).
MAX_TEMPLATE_CHARS = 2_000_000
_INTRINSIC_KEYS = ("Ref", "Condition")


def hook_token(event: Any) -> str | None:
    """``clientRequestToken`` as sent (the guide also spells it ``clientRequesttoken``); None if absent."""
    if not isinstance(event, Mapping):
        return None
    for key in ("clientRequestToken", "clientRequesttoken"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def template_target(event: Any) -> str | None:
    """``STACK`` or ``CHANGE_SET`` when the hook request targets a whole template, else None."""
    if not isinstance(event, Mapping):
        return None
    rd = event.get("requestData")
    if not isinstance(rd, Mapping):
        return None
    for key in ("targetType", "targetName"):
        value = rd.get(key)
        if isinstance(value, str) and value.upper() in TEMPLATE_TARGETS:
            return value.upper()
    return None


def payload_url(event: Mapping[str, Any]) -> str:
    """The presigned URL in ``requestData.payload``.

    Raises
    ------
    InputError
        When it is missing or not a string.
    """
    rd = event.get("requestData")
    url = rd.get("payload") if isinstance(rd, Mapping) else None
    return text(url, "requestData.payload", 8192)


# -- templates -------------------------------------------------------------------------------------
class _CfnLoader(yaml.SafeLoader):
    """Safe YAML loader that reads CloudFormation short forms and refuses anchors and aliases."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise InputError("template: YAML aliases are not allowed in CloudFormation templates")
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None):
            raise InputError("template: YAML anchors are not allowed in CloudFormation templates")
        return super().compose_node(parent, index)


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    """A mapping whose keys are unique: a repeated key would let a template mean two things."""
    keys = [loader.construct_object(k) for k, _v in node.value]
    if len(keys) != len({str(k) for k in keys}):
        raise InputError("template: a mapping repeats a key")
    return loader.construct_mapping(node)


def _short_form(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    key = suffix if suffix in _INTRINSIC_KEYS else f"Fn::{suffix}"
    return {key: value}


_CfnLoader.add_multi_constructor("!", _short_form)
_CfnLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_template(body: Any, at: str = "template") -> Mapping[str, Any]:
    """Parse a template given as JSON or YAML text (or already as an object).

    Raises
    ------
    InputError
        When it is too large, not JSON/YAML, or not an object.
    """
    if isinstance(body, Mapping):
        return body
    if not isinstance(body, str):
        raise InputError(f"{at}: expected a string, got {kind(body)}")
    if len(body) > MAX_TEMPLATE_CHARS:
        raise InputError(f"{at}: larger than {MAX_TEMPLATE_CHARS} characters")
    try:
        doc: Any = json.loads(body, object_pairs_hook=reject_duplicates)
    except DuplicateMember:
        raise InputError("template: an object repeats a key") from None
    except RecursionError:  # JSON past the decoder's recursion limit (YAML would fail the same way)
        raise InputError(f"{at}: nested too deeply") from None
    except ValueError:
        try:
            doc = yaml.load(body, Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise InputError(f"{at}: neither JSON nor YAML ({type(exc).__name__})") from None
        except RecursionError:
            raise InputError(f"{at}: nested too deeply") from None
    if not isinstance(doc, Mapping):
        raise InputError(f"{at}: expected an object, got {kind(doc)}")
    return doc


def _has_intrinsic(value: Any, depth: int = 0) -> bool:
    """True when ``value`` holds an intrinsic function or a dynamic reference anywhere (bounded depth)."""
    stack: list[tuple[Any, int]] = [(value, depth)]
    while stack:
        v, d = stack.pop()
        if d > 64:
            return True
        if isinstance(v, Mapping):
            if any(isinstance(k, str) and (k in _INTRINSIC_KEYS or k.startswith("Fn::")) for k in v):
                return True
            stack += [(x, d + 1) for x in v.values()]
        elif isinstance(v, list):
            stack += [(x, d + 1) for x in v]
        elif isinstance(v, str) and "{{resolve:" in v:  # dynamic reference: resolved at provisioning
            return True
    return False


def _template_resources(doc: Mapping[str, Any]) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    resources = doc.get("Resources")
    if resources is None:
        return
    if not isinstance(resources, Mapping):
        raise InputError(f"template.Resources: expected an object, got {kind(resources)}")
    if len(resources) > MAX_RESOURCES:
        raise InputError(f"template.Resources: more than {MAX_RESOURCES} resources")
    for lid, res in resources.items():
        if not isinstance(res, Mapping):
            raise InputError(f"template.Resources.{str(lid)[:64]}: expected an object")
        rtype = res.get("Type")
        if not isinstance(rtype, str):
            raise InputError(f"template.Resources.{str(lid)[:64]}.Type: expected a string")
        props = res.get("Properties") or {}
        yield str(lid)[:256], rtype, props


def _changed_resources(changes: Any) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
    if not isinstance(changes, list):
        raise InputError(f"changedResources: expected a list, got {kind(changes)}")
    if len(changes) > MAX_RESOURCES:
        raise InputError(f"changedResources: more than {MAX_RESOURCES} changes")
    for i, ch in enumerate(changes):
        at = f"changedResources[{i}]"
        if not isinstance(ch, Mapping):
            raise InputError(f"{at}: expected an object, got {kind(ch)}")
        action = str(ch.get("action") or "").upper()
        if action == "DELETE":
            continue
        lid = text(ch.get("logicalResourceId"), f"{at}.logicalResourceId", 256)
        rtype = text(ch.get("resourceType"), f"{at}.resourceType", 256)
        after = ch.get("afterContext")
        if after is None or after == "":
            continue
        ctx = load_template(after, f"{at}.afterContext")
        props = ctx.get("Properties") or {}
        yield lid, rtype, props


def from_template_payload(
    event: Mapping[str, Any], payload: Mapping[str, Any], now: str | None
) -> LaunchRequest | Ignored:
    """Normalise a STACK or CHANGE_SET hook request whose payload has been fetched.

    Parameters
    ----------
    event
        The hook request.
    payload
        The JSON object behind ``requestData.payload``.
    now
        RFC 3339 decision time.

    Returns
    -------
    LaunchRequest or Ignored
        Ignored for deletes and templates with no launch-bearing resource it can decide.

    Raises
    ------
    InputError
        Malformed request, payload or template.
    """
    from enforcer.intake.cfn_hook import extractor_for, hook_context  # late: cfn_hook imports this module

    target = template_target(event) or "STACK"
    token, acct, reg, stack_id, point = hook_context(event)
    action = f"cloudformation:{target}"
    if point is not None and point.upper().startswith("DELETE"):
        return Ignored("delete operation", token, action)
    if not isinstance(payload, Mapping):
        raise InputError(f"payload: expected an object, got {kind(payload)}")
    changes = get(payload, "changedResources")
    if target == "CHANGE_SET" and changes is not None:
        resources = list(_changed_resources(changes))
    else:
        template = get(payload, "template")
        if template is None or template == "":
            return Ignored("no template in payload", token, action)
        resources = list(_template_resources(load_template(template)))
    items: list[LaunchItem] = []
    decided: list[str] = []
    deferred: list[str] = []
    extra: dict[str, Any] = {}
    refs: set[str] = set()
    for lid, rtype, props in resources:
        extractor = extractor_for(rtype)
        if extractor is None:
            continue
        at = f"template.Resources.{lid}.Properties"
        if not isinstance(props, Mapping):
            raise InputError(f"{at}: expected an object, got {kind(props)}")
        try:
            parsed = extractor(props, at, None)
        except InputError:
            if _has_intrinsic(props):
                deferred.append(lid)  # decided by the RESOURCE invocation, with resolved values
                continue
            raise
        if isinstance(parsed, Ignored) or not parsed.items:
            if _has_intrinsic(props):
                deferred.append(lid)
            continue
        _merge(extra, parsed)
        items += parsed.items
        decided.append(lid)
        ref, _problem = find_attestation_ref(props)
        if ref is not None:
            refs.add(ref)
    base = {"client_request_token": token, "invocation_point": point, "stack_id": stack_id}
    if not items:
        reason = "no launch-bearing resource in template"
        if deferred:
            reason = f"{len(deferred)} resource(s) with intrinsic values left to the RESOURCE invocation"
        return Ignored(reason, token, action)
    extra.update(base, target_type=target, resources=decided[:100], deferred=deferred[:100])
    if len(refs) > 1:
        extra["attestation_ref_rejected"] = "resources carry different attestation ids"
    return LaunchRequest(
        source="cfn_hook",
        action=action,
        account_id=acct,
        region=reg,
        items=items,
        event_id=token,
        event_time=now,
        attestation_ref=next(iter(refs)) if len(refs) == 1 else None,
        extra=extra,
    )


def _merge(extra: dict[str, Any], parsed: Parsed) -> None:
    for key, value in parsed.extra.items():
        if isinstance(value, dict) and isinstance(extra.get(key), dict):
            extra[key].update(value)
        elif key not in extra:
            extra[key] = value
