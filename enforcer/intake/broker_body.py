"""The validated body of a launch-broker request (strict pydantic models).

Imported only when a broker request arrives, so the CloudTrail and hook paths do not pay for
pydantic at cold start.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from enforcer.intake.fields import kind
from enforcer.model import InputError

InstanceTypeStr = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,40}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, str_max_length=256)


class LaunchTemplateSpec(_Strict):
    """A launch template by id or name; version ``$Default`` unless given."""

    id: str | None = Field(None, pattern=r"^lt-[0-9a-f]{8,17}$")
    name: str | None = Field(None, min_length=3, max_length=128, pattern=r"^[A-Za-z0-9()./_-]+$")
    version: str = Field("$Default", pattern=r"^(\$Latest|\$Default|[0-9]{1,10})$")

    @model_validator(mode="after")
    def _id_or_name(self) -> LaunchTemplateSpec:
        if (self.id is None) == (self.name is None):
            raise ValueError("give exactly one of id and name")
        return self


class FleetSpec(_Strict):
    """An EC2 Fleet launch: the instance types are alternatives for ``count`` instances."""

    instanceTypes: list[InstanceTypeStr] = Field(min_length=1, max_length=20)
    type: Literal["instant", "request", "maintain"] = "instant"


class LaunchBody(_Strict):
    """The ``POST /launch`` body."""

    instanceType: InstanceTypeStr | None = None
    count: int = Field(1, ge=1, le=1000)
    launchTemplate: LaunchTemplateSpec | None = None
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
    attestationId: str | None = Field(None, min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")
    fleet: FleetSpec | None = None
    imageId: str | None = Field(None, pattern=r"^ami-[0-9a-f]{8,17}$")
    subnetId: str | None = Field(None, pattern=r"^subnet-[0-9a-f]{8,17}$")
    clientToken: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")

    @model_validator(mode="after")
    def _something_to_launch(self) -> LaunchBody:
        if self.instanceType is None and self.launchTemplate is None and self.fleet is None:
            raise ValueError("give instanceType, launchTemplate or fleet")
        if self.instanceType is not None and self.fleet is not None:
            raise ValueError("give instanceType or fleet, not both")
        return self


def validate_body(data: Any) -> LaunchBody:
    """Validate a launch body; InputError with at most three one-line problems on failure."""
    if not isinstance(data, dict):
        raise InputError(f"launch body: expected a JSON object, got {kind(data)}")
    try:
        return LaunchBody.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False, include_context=False)[:3]:
            loc = ".".join(str(p) for p in err["loc"]) or "body"
            problems.append(f"{loc}: {err['msg']}".replace("\n", " "))
        raise InputError("invalid launch body: " + "; ".join(problems)) from None
