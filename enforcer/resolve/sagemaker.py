"""SageMaker look-ups: endpoint configurations and endpoints, notebook instances, Studio app defaults,
training plans, HyperPod cluster groups."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from enforcer.model import LaunchItem
from enforcer.resolve.common import Lookups, ResolutionError, described_count, resolved

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
#: Most training plans (newest first) searched for the plan an extension offering was bought for.
MAX_PLANS_SEARCHED = 20


class SageMakerLookups(Lookups):
    """What SageMaker says a reference launches."""

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
        variants = self._variants(str(ep.get("EndpointConfigName", "")))
        unknown = sorted(set(desired) - {v for v, _, _ in variants})
        if unknown:  # another spelling, or a configuration swapped meanwhile: not counted as asked
            raise ResolutionError(f"endpoint variants not in its configuration: {', '.join(unknown)[:120]}")
        items = []
        for variant, itype, n in variants:
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
        return resolved(item, itype.removeprefix("ml."))

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
                return resolved(item, itype.removeprefix("ml."))
        return resolved(item, STUDIO_DEFAULT_TYPE)

    def _training_plan(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """The reserved capacities of a training plan (``CreateTrainingPlan``): one item per
        ``ReservedCapacitySummaries[]`` entry, its count the summary's, else the plan's, instance count
        (several entries are a plan's segments; they add up, ``resolver.ADDITIVE_KINDS``). A plan with
        no reserved capacity raises (fails closed)."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        name = str(ref.get("name", ""))
        plan = self.sagemaker.describe_training_plan(TrainingPlanName=name)
        total = described_count(plan.get("TotalInstanceCount"))
        items = []
        for summary in plan.get("ReservedCapacitySummaries") or []:
            itype = summary.get("InstanceType")
            if not isinstance(itype, str) or not itype:
                raise ResolutionError(f"training plan {name!r}: a reserved capacity has no instance type")
            n = described_count(summary.get("TotalInstanceCount")) or total or item.count
            items.append(resolved(item, itype.removeprefix("ml."), n))
        if not items:
            raise ResolutionError(f"training plan {name!r} has no reserved capacity")
        return items

    def _training_plan_extension(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """The plan an extension offering extends (``ExtendTrainingPlan``), as a ``sagemaker_training_plan``
        reference the resolver then looks up. Neither the request nor the response names the plan, so
        the account's newest plans (``ListTrainingPlans``) are searched for the offering id in their
        extension history (``DescribeTrainingPlanExtensionHistory``); not found: fails closed."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        offering = str(ref.get("id", ""))
        plans = self.sagemaker.list_training_plans(
            SortBy="StartTime", SortOrder="Descending", MaxResults=MAX_PLANS_SEARCHED
        )
        for plan in (plans.get("TrainingPlanSummaries") or [])[:MAX_PLANS_SEARCHED]:
            arn, name = plan.get("TrainingPlanArn"), plan.get("TrainingPlanName")
            if not isinstance(arn, str) or not isinstance(name, str) or not arn or not name:
                continue
            history = self.sagemaker.describe_training_plan_extension_history(
                TrainingPlanArn=arn, MaxResults=100
            )
            if any(
                e.get("TrainingPlanExtensionOfferingId") == offering
                for e in history.get("TrainingPlanExtensions") or []
            ):
                plan_ref = {"kind": "sagemaker_training_plan", "name": name, "extension": offering}
                return [LaunchItem(None, item.count, plan_ref, item.path)]
        raise ResolutionError(
            f"extension offering {offering!r} not in the history of the newest {MAX_PLANS_SEARCHED} plans"
        )

    def _cluster_group(self, item: LaunchItem, ref: Mapping[str, Any]) -> list[LaunchItem]:
        """A HyperPod group scaled by count alone (``UpdateCluster``, ``BatchAddClusterNodes``): its types
        from ``DescribeCluster`` (``InstanceType``; a flexible group's current and desired types are
        alternatives). ``UpdateCluster`` asks for the group's new size, which the answer may not show yet:
        the larger of the two counts. ``BatchAddClusterNodes`` asks for an increment (``ref["added"]``):
        that many nodes, whatever the group already runs. A cluster or group SageMaker does not return,
        or a group naming no type, raises (fails closed)."""
        if self.sagemaker is None:
            raise ResolutionError("no SageMaker client")
        cluster, name = str(ref.get("cluster", "")), str(ref.get("group", ""))
        described = self.sagemaker.describe_cluster(ClusterName=cluster)
        groups = [
            g
            for key in ("InstanceGroups", "RestrictedInstanceGroups")
            for g in described.get(key) or []
            if isinstance(g, Mapping) and g.get("InstanceGroupName") == name
        ]
        if not groups:
            raise ResolutionError(f"cluster {cluster[:120]!r} has no instance group {name[:63]!r}")
        types: list[str] = []
        for g in groups:
            reqs = g.get("InstanceRequirements") or {}
            named = [g.get("InstanceType")]
            named += list(reqs.get("CurrentInstanceTypes") or []) + list(
                reqs.get("DesiredInstanceTypes") or []
            )
            named += [d.get("InstanceType") for d in g.get("InstanceTypeDetails") or [] if d]
            for t in named:
                if isinstance(t, str) and t and t.lower().removeprefix("ml.") not in types:
                    types.append(t.lower().removeprefix("ml."))
        if not types:
            raise ResolutionError(f"cluster {cluster[:120]!r} group {name[:63]!r} names no instance type")
        n = item.count
        if not ref.get("added"):
            described = (
                described_count(g.get(k)) or 0 for g in groups for k in ("TargetCount", "CurrentCount")
            )
            n = max(n, *described)
        return [resolved(item, t, n) for t in types]
