"""The policy's schema: what an operator writes under ``policy:``.

Policy is data, validated strictly (unknown keys are errors) so a typo can
never silently weaken it. Evaluation lives in :mod:`hybridgate.policy.evaluate`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hybridgate.scan.findings import DataClass


class Action(StrEnum):
    """What a request's data allows, from most to least permissive."""

    ALLOW = "allow"
    REDACT = "redact"
    ON_PREM_ONLY = "on_prem_only"
    BLOCK = "block"


#: Severity order used to combine per-class actions: the strictest wins.
ACTION_SEVERITY: dict[Action, int] = {
    Action.ALLOW: 0,
    Action.REDACT: 1,
    Action.ON_PREM_ONLY: 2,
    Action.BLOCK: 3,
}


class Openness(StrEnum):
    """Five-level openness scale (1 = closed API only ... 5 = weights, code and data)."""

    CLOSED = "closed"  # 1
    OPEN_WEIGHTS_RESTRICTED = "open_weights_restricted"  # 2
    OPEN_WEIGHTS_PERMISSIVE = "open_weights_permissive"  # 3
    OPEN_WEIGHTS_CODE = "open_weights_code"  # 4
    FULLY_OPEN = "fully_open"  # 5

    @property
    def level(self) -> int:
        return _OPENNESS_LEVEL[self]

    @classmethod
    def from_level(cls, level: int) -> Openness:
        for k, v in _OPENNESS_LEVEL.items():
            if v == level:
                return k
        raise ValueError(f"openness level must be 1..5, got {level}")


_OPENNESS_LEVEL = {
    Openness.CLOSED: 1,
    Openness.OPEN_WEIGHTS_RESTRICTED: 2,
    Openness.OPEN_WEIGHTS_PERMISSIVE: 3,
    Openness.OPEN_WEIGHTS_CODE: 4,
    Openness.FULLY_OPEN: 5,
}


#: Largest integer canonical JSON (RFC 8785) represents exactly; the policy hash needs it.
_MAX_SAFE_INT = 2**53


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Residency(_Strict):
    """Where data of one class may be processed. Empty lists mean no restriction."""

    regions: list[str] = Field(default_factory=list)
    providers: list[str] = Field(default_factory=list)
    locations: list[Literal["on_prem", "external"]] = Field(default_factory=list)


class RouteRestrictions(_Strict):
    """Routes a team may never use, by route metadata (e.g. forbid a licence)."""

    licences: list[str] = Field(default_factory=list, description="forbidden licence ids")
    providers: list[str] = Field(default_factory=list, description="forbidden provider kinds")
    routes: list[str] = Field(default_factory=list, description="forbidden route names")
    min_openness: Openness | None = Field(
        default=None, description="routes below this openness level are forbidden"
    )


class PolicyOverride(_Strict):
    """Per-team or per-key changes; any field left out keeps the base policy's value."""

    classes: dict[DataClass, Action] = Field(default_factory=dict)
    residency: dict[DataClass, Residency] = Field(default_factory=dict)
    forbid: RouteRestrictions | None = None
    unknown: Action | None = None
    log_prompts: bool | None = None


class ParamCondition(_Strict):
    """A condition on one action parameter, e.g. ``amount gt 1000``."""

    param: str
    op: Literal["gt", "gte", "lt", "lte", "eq", "ne", "in", "not_in", "exists"]
    value: float | int | str | bool | list[str | int | float] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> ParamCondition:
        """Reject rules that could never be evaluated, at load time rather than per request."""
        v = self.value
        numeric = isinstance(v, int | float) and not isinstance(v, bool)
        if self.op in ("gt", "gte", "lt", "lte") and not numeric:
            raise ValueError(f"op {self.op!r} needs a numeric value")
        if self.op in ("in", "not_in") and not isinstance(v, list):
            raise ValueError(f"op {self.op!r} needs a list value")
        if self.op == "exists" and v not in (None, True, False):
            raise ValueError("op 'exists' takes no value, or true/false")
        items = v if isinstance(v, list) else [v]
        for x in items:
            if isinstance(x, int) and not isinstance(x, bool) and abs(x) > _MAX_SAFE_INT:
                raise ValueError("integer values must lie within +/-2**53 (canonical JSON)")
            if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
                raise ValueError("values must be finite numbers")
        return self


class ActionRule(_Strict):
    """One rule for agent actions (issue: action gate). First matching rule wins."""

    name: str
    action: str = Field(description="action name or glob, e.g. EXECUTE_TRANSACTION or DELETE_*")
    effect: Literal["allow", "deny", "require_approval"]
    when: list[ParamCondition] = Field(default_factory=list, description="all must hold")
    teams: list[str] = Field(default_factory=list, description="empty: every team")
    agents: list[str] = Field(default_factory=list, description="empty: every agent")


class PolicyConfig(_Strict):
    """The whole policy. Its canonical JSON's SHA-256 is the policy hash in receipts."""

    version: int = 1
    classes: dict[DataClass, Action] = Field(
        default_factory=lambda: {
            DataClass.SECRET: Action.BLOCK,
            DataClass.HEALTH: Action.ON_PREM_ONLY,
            DataClass.ORG_CONFIDENTIAL: Action.ON_PREM_ONLY,
            DataClass.FINANCIAL: Action.REDACT,
            DataClass.GOVERNMENT_ID: Action.ON_PREM_ONLY,
            DataClass.CONTACT: Action.REDACT,
            DataClass.PERSON: Action.REDACT,
        },
        description="action per data class; a class not listed gets `unknown`",
    )
    unknown: Action = Field(
        default=Action.ON_PREM_ONLY,
        description="action when the scan failed or parts could not be scanned (fail closed)",
    )
    residency: dict[DataClass, Residency] = Field(default_factory=dict)
    forbid: RouteRestrictions = Field(default_factory=RouteRestrictions)
    teams: dict[str, PolicyOverride] = Field(default_factory=dict)
    keys: dict[str, PolicyOverride] = Field(default_factory=dict, description="by virtual key id")
    log_prompts: bool = Field(default=False, description="prompts are never logged unless true")
    actions: list[ActionRule] = Field(default_factory=list)
    action_default: Literal["allow", "deny", "require_approval"] = "deny"
