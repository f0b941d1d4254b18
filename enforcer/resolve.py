"""AWS look-ups that turn references into instance types (``pipeline.Resolver``).

A launch often names no instance type: it points at a launch template (``$Latest``, ``$Default``
or a version number), an Auto Scaling group, an EC2 Fleet, a launch configuration, an instance id
(state-change events, resizes) or a Capacity Block offering. :class:`AwsResolver` asks EC2 and
Auto Scaling and replaces each such item by what it resolves to: one item per instance type (one per
fleet/ASG override, which are alternatives), or the item left unresolved with a ``resolution_error``
when AWS cannot tell. Unresolved items classify as ``unknown`` and the policy denies them with
``REQUEST_UNRESOLVED``: resolution fails closed.

Attribute-based selection (``InstanceRequirements``) that admits accelerators without naming types
stays unresolved ("may hold a controlled chip"); explicit ``AllowedInstanceTypes`` are expanded,
wildcards only against a known-types list. The resolver never raises: every AWS error, including
moto's ``NotImplementedError`` for ``DescribeCapacityBlockOfferings``, leaves the item unresolved.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from enforcer.aws_errors import error_code
from enforcer.intake.cloudtrail_ec2 import fleet_configs
from enforcer.intake.fields import requirements_ref
from enforcer.intake.tags import find_attestation_ref
from enforcer.model import LaunchItem, LaunchRequest

#: Upper bound on the items one request may grow to; beyond it the reference stays unresolved.
MAX_ITEMS = 64
#: Upper bound on reference chains (ASG -> template -> requirements).
MAX_DEPTH = 4
#: Durations probed when looking a Capacity Block offering up (the API has no offering-id filter).
CAPACITY_BLOCK_HOURS = (24, 48, 72, 96, 120, 144, 168, 336)
_MAX_PAGES = 5
NOT_FOUND_CODES = frozenset({"InvalidInstanceID.NotFound", "InvalidInstanceID.Malformed"})


#: Studio app type -> the settings block holding its default resource spec.
STUDIO_SETTINGS = {
    "KernelGateway": "KernelGatewayAppSettings",
    "JupyterLab": "JupyterLabAppSettings",
    "CodeEditor": "CodeEditorAppSettings",
    "RStudioServerPro": "RStudioServerProAppSettings",
    "RSessionGateway": "RSessionAppSettings",
    "TensorBoard": "TensorBoardAppSettings",
}
#: SageMaker Studio's documented default instance for compute apps with no default resource spec.
STUDIO_DEFAULT_TYPE = "t3.medium"


class ResolutionError(Exception):
    """A reference that AWS could not turn into an instance type (kept on the item, never raised out)."""


class AwsResolver:
    """``pipeline.Resolver`` backed by EC2 and Auto Scaling clients of one account and region.

    Parameters
    ----------
    ec2
        boto3 EC2 client (DescribeLaunchTemplateVersions, DescribeInstances, DescribeFleets,
        DescribeCapacityBlockOfferings).
    autoscaling
        Optional boto3 Auto Scaling client (DescribeAutoScalingGroups, DescribeLaunchConfigurations);
        without it ASG and launch-configuration references stay unresolved.
    sagemaker
        Optional boto3 SageMaker client (DescribeEndpointConfig, for ``UpdateEndpoint`` and
        ``CreateEndpoint``); without it endpoint-configuration references stay unresolved.
    known_types
        Instance types used to expand wildcards in ``AllowedInstanceTypes`` (e.g.
        ``ChipCatalog().known_types()``); without it wildcards stay unresolved.
    attempts
        Tries for ``DescribeInstances`` when the instance is not visible yet (eventual consistency).
    backoff
        First retry delay in seconds; doubled per retry.
    sleep
        Sleep function (injected by tests).
    capacity_block_hours
        Durations probed when looking an offering up.
    """

    def __init__(
        self,
        ec2: Any,
        autoscaling: Any = None,
        *,
        known_types: Iterable[str] | None = None,
        attempts: int = 4,
        backoff: float = 0.2,
        sleep: Callable[[float], None] = time.sleep,
        capacity_block_hours: Sequence[int] = CAPACITY_BLOCK_HOURS,
        sagemaker: Any = None,
    ) -> None:
        self.ec2 = ec2
        self.autoscaling = autoscaling
        self.sagemaker = sagemaker
        self.known_types = tuple(known_types) if known_types is not None else None
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.sleep = sleep
        self.capacity_block_hours = tuple(capacity_block_hours)
        self._versions: dict[tuple[str, str], dict[str, Any]] = {}

    # -- the Resolver protocol ------------------------------------------------------------
    def resolve(self, request: LaunchRequest) -> None:
        """Resolve every unresolved item of ``request`` in place (items may be added).

        Parameters
        ----------
        request
            The launch request; items that resolve to several alternatives set
            ``request.extra["alternatives"]``.
        """
        out: list[LaunchItem] = []
        for index, item in enumerate(request.items):
            if item.instance_type is not None:
                out.append(item)
                continue
            budget = MAX_ITEMS - len(out) - (len(request.items) - index - 1)
            resolved = self.resolve_item(item, request, budget=max(budget, 1))
            if len(resolved) > 1:  # a template's or requirement's choices: alternatives for this item
                for r in resolved:
                    r.group = item.group or f"resolved[{index}]"
                request.extra["alternatives"] = True
            out.extend(resolved)
        request.items[:] = out

    def resolve_item(
        self, item: LaunchItem, request: LaunchRequest, budget: int = MAX_ITEMS, depth: int = 0
    ) -> list[LaunchItem]:
        """Return what ``item`` resolves to: resolved items, or ``[item]`` carrying a ``resolution_error``.

        Parameters
        ----------
        item
            An unresolved item.
        request
            The request it belongs to (state-change look-ups add the instance's attestation tag).
        budget
            Most items the reference may expand to.
        depth
            Current reference-chain depth.
        """
        ref = item.ref or {}
        try:
            if depth >= MAX_DEPTH:
                raise ResolutionError("reference chain too deep")
            expanded = self._expand(item, ref, request)
            if expanded is None:
                return [item]
            result: list[LaunchItem] = []
            for new in expanded:
                if new.instance_type is None and new.ref is not ref:
                    result.extend(self.resolve_item(new, request, budget - len(result), depth + 1))
                else:
                    result.append(new)
                if len(result) > budget:
                    raise ResolutionError(f"more than {budget} alternatives")
            return result or [item]
        except Exception as exc:  # never raise: the item stays unresolved and the policy fails closed
            detail = str(exc)[:200] if isinstance(exc, ResolutionError) else error_code(exc)
            item.ref = {**ref, "resolution_error": detail}
            return [item]

    # -- per reference kind ------------------------------------------------------------------
    def _expand(
        self, item: LaunchItem, ref: Mapping[str, Any], request: LaunchRequest
    ) -> list[LaunchItem] | None:
        kind = ref.get("kind")
        if kind == "launch_template":
            return self._template(item, ref)
        if kind == "instance_id":
            return [self._instance(item, str(ref.get("id", "")), request)]
        if kind == "instance_requirements":
            return self._requirements(item, ref)
        if kind == "auto_scaling_group":
            return self._asg(item, str(ref.get("name", "")))
        if kind == "launch_configuration":
            return [self._launch_configuration(item, str(ref.get("name", "")))]
        if kind == "fleet":
            return self._fleet(item, str(ref.get("id", "")))
        if kind == "capacity_block_offering":
            return [self._offering(item, str(ref.get("id", "")))]
        if kind == "capacity_reservation":
            return [self._reservation(item, str(ref.get("id", "")))]
        if kind == "sagemaker_endpoint_config":
            return self._endpoint_config(item, str(ref.get("name", "")))
        if kind == "sagemaker_endpoint":
            return self._endpoint(item, ref)
        if kind == "sagemaker_notebook":
            return [self._notebook(item, str(ref.get("name", "")))]
        if kind == "sagemaker_app_default":
            return [self._app_default(item, ref)]
        return None  # instance_family and kinds the pipeline classifies itself

    def template_data(self, ref: Mapping[str, Any]) -> dict[str, Any]:
        """``LaunchTemplateData`` of the referenced version (numbered versions are cached)."""
        version = str(ref.get("version") or "$Default")
        kwargs: dict[str, Any] = {"Versions": [version]}
        if ref.get("id"):
            kwargs["LaunchTemplateId"] = str(ref["id"])
        elif ref.get("name"):
            kwargs["LaunchTemplateName"] = str(ref["name"])
        else:
            raise ResolutionError("launch template reference without id or name")
        key = (str(ref.get("id") or "name:" + str(ref.get("name"))), version)
        cached = self._versions.get(key)
        if cached is not None:
            return cached
        versions = self.ec2.describe_launch_template_versions(**kwargs).get("LaunchTemplateVersions") or []
        if not versions:
            raise ResolutionError(f"launch template version {version} not found")
        data: dict[str, Any] = versions[0].get("LaunchTemplateData") or {}
        if version.isdigit():  # numbered versions are immutable
            self._versions[key] = data
        return data

    def _template(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        data = self.template_data(ref)
        itype = data.get("InstanceType")
        if isinstance(itype, str) and itype:
            return [_resolved(item, itype)]
        reqs = data.get("InstanceRequirements")
        if isinstance(reqs, Mapping):
            rref = requirements_ref(reqs, f"{item.path}(launch template)")
            rref["launch_template"] = dict(ref)
            return [LaunchItem(instance_type=None, count=item.count, ref=rref, path=item.path)]
        raise ResolutionError("launch template names no instance type")

    def _requirements(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem] | None:
        allowed = [str(t) for t in ref.get("allowed_instance_types") or []]
        if not allowed:
            return None  # admits accelerators without naming types: may hold a controlled chip
        excluded = [str(t) for t in ref.get("excluded_instance_types") or []]
        types: list[str] = []
        for pattern in allowed:
            if not any(ch in pattern for ch in "*?["):
                types.append(pattern)
            elif self.known_types is None:
                raise ResolutionError(f"wildcard {pattern!r} with no known-types list")
            else:
                types.extend(fnmatch.filter(self.known_types, pattern))
        types = [t for t in dict.fromkeys(types) if not any(fnmatch.fnmatch(t, x) for x in excluded)]
        if not types:
            raise ResolutionError("allowed instance types match nothing")
        return [_resolved(item, t) for t in types]

    def _instance(self, item: LaunchItem, iid: str, request: LaunchRequest) -> LaunchItem:
        inst = self.describe_instance(iid)
        itype = inst.get("InstanceType")
        if not isinstance(itype, str) or not itype:
            raise ResolutionError(f"{iid} has no instance type")
        if request.attestation_ref is None:
            request.attestation_ref = find_attestation_ref(inst.get("Tags") or [])[0]
        state = (inst.get("State") or {}).get("Name")
        if isinstance(state, str):
            request.extra.setdefault("instance_states", {})[iid] = state
        return _resolved(item, itype)

    def describe_instance(self, iid: str) -> dict[str, Any]:
        """``DescribeInstances`` for one id, retrying while EC2 does not see the instance yet."""
        delay = self.backoff
        for attempt in range(self.attempts):
            try:
                resp = self.ec2.describe_instances(InstanceIds=[iid])
            except Exception as exc:
                if error_code(exc) not in NOT_FOUND_CODES or attempt == self.attempts - 1:
                    raise
                self.sleep(delay)
                delay *= 2
                continue
            for res in resp.get("Reservations") or []:
                for inst in res.get("Instances") or []:
                    if inst.get("InstanceId") == iid:
                        return dict(inst)
            raise ResolutionError(f"{iid} not returned by DescribeInstances")
        raise ResolutionError(f"{iid} not found")  # pragma: no cover - the loop returns or raises

    def _asg(self, item: LaunchItem, name: str) -> list[LaunchItem]:
        if self.autoscaling is None:
            raise ResolutionError("no Auto Scaling client")
        groups = (
            self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[name]).get(
                "AutoScalingGroups"
            )
            or []
        )
        if not groups:
            raise ResolutionError(f"auto scaling group {name!r} not found")
        g = groups[0]
        items: list[LaunchItem] = []
        mip = (g.get("MixedInstancesPolicy") or {}).get("LaunchTemplate") or {}
        spec = mip.get("LaunchTemplateSpecification") or g.get("LaunchTemplate")
        tref = _template_ref(spec) if spec else None
        overrides = mip.get("Overrides") or []
        for ov in overrides:
            if ov.get("InstanceType"):
                items.append(_resolved(item, str(ov["InstanceType"])))
            elif ov.get("InstanceRequirements"):
                rref = requirements_ref(ov["InstanceRequirements"], f"{item.path}(asg override)")
                if tref is not None:
                    rref["launch_template"] = tref
                items.append(LaunchItem(None, item.count, rref, item.path))
        if (not overrides or len(items) < len(overrides)) and tref is not None:
            items.append(LaunchItem(None, item.count, tref, item.path))
        if g.get("LaunchConfigurationName"):
            lc = {"kind": "launch_configuration", "name": str(g["LaunchConfigurationName"])}
            items.append(LaunchItem(None, item.count, lc, item.path))
        if not items:
            raise ResolutionError(f"auto scaling group {name!r} has no launch template or configuration")
        return items

    def _variants(self, name: str) -> list[tuple[str, str, int]]:
        """``(variant, instance type, count)`` of an endpoint configuration's instance-backed variants."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        cfg = self.sagemaker.describe_endpoint_config(EndpointConfigName=name)
        out: list[tuple[str, str, int]] = []
        for key in ("ProductionVariants", "ShadowProductionVariants"):
            for v in cfg.get(key) or []:
                itype = v.get("InstanceType")
                if not isinstance(itype, str) or not itype:
                    continue  # serverless variant: no instances
                top = (v.get("ManagedInstanceScaling") or {}).get("MaxInstanceCount")
                counts = [c for c in (v.get("InitialInstanceCount"), top) if isinstance(c, int)]
                out.append((str(v.get("VariantName", "")), itype.removeprefix("ml."), max(counts, default=1)))
        if not out:
            raise ResolutionError(f"endpoint configuration {name!r} has no instance-backed variant")
        return out

    def _endpoint_config(self, item: LaunchItem, name: str) -> list[LaunchItem]:
        """The variants of an endpoint configuration (``UpdateEndpoint``, ``CreateEndpoint``); they add up."""
        return [LaunchItem(t, n, None, item.path) for _, t, n in self._variants(name)]

    def _endpoint(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """A running endpoint's variants at the counts a scaling call asks for (weights and capacities)."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        ep = self.sagemaker.describe_endpoint(EndpointName=str(ref.get("name", "")))
        desired = ref.get("counts") or {}
        items = []
        for variant, itype, n in self._variants(str(ep.get("EndpointConfigName", ""))):
            want = desired.get(variant)
            items.append(LaunchItem(itype, max(n, want) if isinstance(want, int) else n, None, item.path))
        return items

    def _notebook(self, item: LaunchItem, name: str) -> LaunchItem:
        """The instance type of a notebook instance being (re)started (``StartNotebookInstance``)."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        itype = self.sagemaker.describe_notebook_instance(NotebookInstanceName=name).get("InstanceType")
        if not isinstance(itype, str) or not itype:
            raise ResolutionError(f"notebook instance {name!r} has no instance type")
        return _resolved(item, itype.removeprefix("ml."))

    def _app_default(self, item: LaunchItem, ref: Mapping[str, Any]) -> LaunchItem:
        """The default resource spec a Studio app without ``ResourceSpec`` runs on: the space's, the
        user profile's, then the domain's settings for the app type; SageMaker's own default last."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        app_type = str(ref.get("app_type", ""))
        key = STUDIO_SETTINGS.get(app_type)
        domain = str(ref.get("domain_id", ""))
        if key is None or not domain:
            raise ResolutionError(f"studio app {app_type!r} without a domain")
        layers: list[Any] = []
        if ref.get("space"):
            layers.append(
                self.sagemaker.describe_space(DomainId=domain, SpaceName=str(ref["space"])).get(
                    "SpaceSettings"
                )
            )
        if ref.get("user_profile"):
            prof = self.sagemaker.describe_user_profile(
                DomainId=domain, UserProfileName=str(ref["user_profile"])
            )
            layers.append(prof.get("UserSettings"))
        dom = self.sagemaker.describe_domain(DomainId=domain)
        layers += [dom.get("DefaultSpaceSettings"), dom.get("DefaultUserSettings")]
        for settings in layers:
            spec = ((settings or {}).get(key) or {}).get("DefaultResourceSpec") or {}
            itype = spec.get("InstanceType")
            if isinstance(itype, str) and itype and itype != "system":
                return _resolved(item, itype.removeprefix("ml."))
        return _resolved(item, STUDIO_DEFAULT_TYPE)

    def _launch_configuration(self, item: LaunchItem, name: str) -> LaunchItem:
        if self.autoscaling is None:
            raise ResolutionError("no Auto Scaling client")
        lcs = (
            self.autoscaling.describe_launch_configurations(LaunchConfigurationNames=[name]).get(
                "LaunchConfigurations"
            )
            or []
        )
        if not lcs or not lcs[0].get("InstanceType"):
            raise ResolutionError(f"launch configuration {name!r} not found")
        return _resolved(item, str(lcs[0]["InstanceType"]))

    def _fleet(self, item: LaunchItem, fleet_id: str) -> list[LaunchItem]:
        fleets = self.ec2.describe_fleets(FleetIds=[fleet_id]).get("Fleets") or []
        if not fleets:
            raise ResolutionError(f"fleet {fleet_id!r} not found")
        items = fleet_configs(fleets[0].get("LaunchTemplateConfigs") or [], f"{item.path}(fleet)", item.count)
        for new in items:
            if new.instance_type is not None:
                new.ref = item.ref
        return items

    def _offering(self, item: LaunchItem, offering_id: str) -> LaunchItem:
        for hours in self.capacity_block_hours:
            kwargs: dict[str, Any] = {"CapacityDurationHours": hours}
            for _ in range(_MAX_PAGES):
                resp = self.ec2.describe_capacity_block_offerings(**kwargs)
                for off in resp.get("CapacityBlockOfferings") or []:
                    if off.get("CapacityBlockOfferingId") == offering_id and off.get("InstanceType"):
                        count = int(off.get("InstanceCount") or item.count)
                        return _resolved(item, str(off["InstanceType"]), count)
                token = resp.get("NextToken")
                if not token:
                    break
                kwargs["NextToken"] = token
        raise ResolutionError(f"capacity block offering {offering_id!r} not found")

    def _reservation(self, item: LaunchItem, reservation_id: str) -> LaunchItem:
        resp = self.ec2.describe_capacity_reservations(CapacityReservationIds=[reservation_id])
        for cr in resp.get("CapacityReservations") or []:
            if cr.get("InstanceType"):
                return _resolved(
                    item, str(cr["InstanceType"]), int(cr.get("TotalInstanceCount") or item.count)
                )
        raise ResolutionError(f"capacity reservation {reservation_id!r} not found")


def _resolved(item: LaunchItem, instance_type: str, count: int | None = None) -> LaunchItem:
    """A resolved copy of ``item`` that keeps the reference it came from (for the audit record)."""
    return LaunchItem(
        instance_type=instance_type.lower(),
        count=item.count if count is None else count,
        ref=item.ref,
        path=item.path,
    )


def _template_ref(spec: Mapping[str, Any]) -> dict[str, Any]:
    ref: dict[str, Any] = {"kind": "launch_template", "version": str(spec.get("Version") or "$Default")}
    if spec.get("LaunchTemplateId"):
        ref["id"] = str(spec["LaunchTemplateId"])
    if spec.get("LaunchTemplateName"):
        ref["name"] = str(spec["LaunchTemplateName"])
    return ref


class RoutedResolver:
    """Resolver that routes each request to an :class:`AwsResolver` for its account and region.

    Parameters
    ----------
    factory
        ``factory(account_id, region) -> AwsResolver``, called per request: it must be cheap (e.g. it
        takes clients from ``enforcer.aws_wiring.ClientFactory``, which caches them and refreshes
        assumed-role credentials before they expire, so no stale client is kept here).
    """

    def __init__(self, factory: Callable[[str, str], AwsResolver]) -> None:
        self.factory = factory

    def resolve(self, request: LaunchRequest) -> None:
        """Resolve ``request`` in its own account; a failing factory leaves every item unresolved."""
        try:
            resolver = self.factory(request.account_id, request.region)
        except Exception as exc:
            for item in request.items:
                if item.instance_type is None:
                    item.ref = {**(item.ref or {}), "resolution_error": error_code(exc)}
            return
        resolver.resolve(request)
