"""The resolver over the per-service look-ups, and the router that picks one per account and region."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from enforcer.aws_errors import error_code
from enforcer.model import LaunchItem, LaunchRequest
from enforcer.resolve.autoscaling import AutoScalingLookups
from enforcer.resolve.common import MAX_DEPTH, MAX_ITEMS, ResolutionError
from enforcer.resolve.ec2 import CAPACITY_BLOCK_HOURS, Ec2Lookups
from enforcer.resolve.fleets import FleetLookups
from enforcer.resolve.sagemaker import SageMakerLookups

#: Reference kinds whose items run side by side and add up: an endpoint's production and shadow
#: variants, a training plan's reserved capacities (counted together: the conservative reading when
#: segments may overlap). Every other expansion (launch template versions, fleet and ASG overrides,
#: instance requirements) lists alternatives for one capacity, so only its largest item counts.
ADDITIVE_KINDS = frozenset(
    {
        "sagemaker_endpoint_config",
        "sagemaker_endpoint",
        "sagemaker_training_plan",
        "sagemaker_training_plan_extension",
    }
)


class AwsResolver(Ec2Lookups, AutoScalingLookups, SageMakerLookups, FleetLookups):
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
        Optional boto3 SageMaker client (DescribeEndpointConfig for ``UpdateEndpoint`` and
        ``CreateEndpoint``, DescribeTrainingPlan for ``CreateTrainingPlan`` ...); without it SageMaker
        references stay unresolved.
    deadline, appstream, codebuild
        Optional boto3 clients (Deadline ``GetFleet``, AppStream ``DescribeFleets``, CodeBuild
        ``BatchGetFleets``) for fleets scaled by count alone (``UpdateFleet``); without one, that
        service's fleet references stay unresolved.
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
        deadline: Any = None,
        appstream: Any = None,
        codebuild: Any = None,
    ) -> None:
        self.ec2 = ec2
        self.autoscaling = autoscaling
        self.sagemaker = sagemaker
        self.deadline, self.appstream, self.codebuild = deadline, appstream, codebuild
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
            kind = (item.ref or {}).get("kind")
            resolved = self.resolve_item(item, request, budget=max(budget, 1))
            if len(resolved) > 1 and kind not in ADDITIVE_KINDS:  # choices: alternatives for this item
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
        if kind == "capacity_reservation_fleet":
            return self._reservation_fleet(item, str(ref.get("id", "")))
        if kind == "sagemaker_endpoint_config":
            return self._endpoint_config(item, str(ref.get("name", "")))
        if kind == "sagemaker_endpoint":
            return self._endpoint(item, ref)
        if kind == "sagemaker_notebook":
            return [self._notebook(item, str(ref.get("name", "")))]
        if kind == "sagemaker_app_default":
            return [self._app_default(item, ref)]
        if kind == "sagemaker_training_plan":
            return self._training_plan(item, ref)
        if kind == "sagemaker_training_plan_extension":
            return self._training_plan_extension(item, ref)
        if kind == "sagemaker_cluster_group":
            return self._cluster_group(item, ref)
        if kind == "deadline_fleet":
            return self._deadline_fleet(item, ref)
        if kind == "appstream_fleet":
            return self._appstream_fleet(item, ref)
        if kind == "codebuild_fleet":
            return self._codebuild_fleet(item, ref)
        return None  # instance_family and kinds the pipeline classifies itself


class RoutedResolver:
    """Resolver that routes each request to an :class:`AwsResolver` for its account and region.

    Parameters
    ----------
    factory
        ``factory(account_id, region) -> AwsResolver``, called per request: it must be cheap (e.g. it
        takes clients from ``enforcer.wiring.aws.ClientFactory``, which caches them and refreshes
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
