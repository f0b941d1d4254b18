"""AWS look-ups that turn references into instance types (``pipeline.Resolver``).

A launch often names no instance type: it points at a launch template (``$Latest``, ``$Default``
or a version number), an Auto Scaling group, an EC2 Fleet, a launch configuration, an instance id
(state-change events, resizes), a Capacity Block offering, a capacity reservation (fleet) resized, a
SageMaker resource (endpoint configuration, notebook, Studio default, training plan, HyperPod group
scaled by count alone) or a Deadline, AppStream or CodeBuild fleet scaled by count alone
(:mod:`enforcer.resolve.fleets`). :class:`AwsResolver` asks EC2, Auto Scaling,
SageMaker and those services and replaces each such item by what it resolves to: one item per
instance type (one per fleet/ASG override or training-plan reserved capacity, which count as
alternatives), or the item left unresolved with a ``resolution_error`` when AWS cannot tell (a training
plan *extension* names no plan: it is looked for in the extension histories of the account's newest
plans). Unresolved items classify as ``unknown`` and the policy denies them with
``REQUEST_UNRESOLVED``: resolution fails closed.

Attribute-based selection (``InstanceRequirements``) that admits accelerators without naming types
stays unresolved ("may hold a controlled chip"); explicit ``AllowedInstanceTypes`` are expanded,
wildcards only against a known-types list. The resolver never raises: every AWS error, including
moto's ``NotImplementedError`` for ``DescribeCapacityBlockOfferings``, leaves the item unresolved.
"""

from __future__ import annotations

from enforcer.resolve.common import MAX_DEPTH, MAX_ITEMS, ResolutionError
from enforcer.resolve.ec2 import CAPACITY_BLOCK_HOURS
from enforcer.resolve.resolver import AwsResolver, RoutedResolver
from enforcer.resolve.sagemaker import STUDIO_DEFAULT_TYPE, STUDIO_SETTINGS

__all__ = [
    "CAPACITY_BLOCK_HOURS",
    "MAX_DEPTH",
    "MAX_ITEMS",
    "STUDIO_DEFAULT_TYPE",
    "STUDIO_SETTINGS",
    "AwsResolver",
    "ResolutionError",
    "RoutedResolver",
]
