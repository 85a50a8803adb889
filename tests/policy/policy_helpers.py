"""Builders shared by the policy tests: scans, routes and policies from a few words."""

from __future__ import annotations

from typing import Literal

from hybridgate.policy import RouteFacts
from hybridgate.policy.model import Openness
from hybridgate.scan.findings import DataClass, Finding, RequestScan, SegmentFindings

TYPES = {
    DataClass.FINANCIAL: "CREDIT_CARD",
    DataClass.GOVERNMENT_ID: "US_SSN",
    DataClass.CONTACT: "EMAIL_ADDRESS",
    DataClass.SECRET: "AWS_ACCESS_KEY",
    DataClass.HEALTH: "MEDICAL_RECORD",
    DataClass.ORG_CONFIDENTIAL: "ORG_TERM",
    DataClass.PERSON: "PERSON",
}


def finding(dc: DataClass, start: int = 0, end: int = 4, type_: str | None = None) -> Finding:
    return Finding(type_ or TYPES[dc], dc, start, end, 0.9, "test")


def scan_of(
    *classes: DataClass, complete: bool = True, unscannable: tuple[str, ...] = ()
) -> RequestScan:
    """One segment per class, each with one finding at 0..4."""
    segs = tuple(SegmentFindings(i, (finding(dc),)) for i, dc in enumerate(classes))
    errors = () if complete else ("detector x failed: RuntimeError",)
    return RequestScan(segments=segs, complete=complete, errors=errors, unscannable=unscannable)


def route(
    name: str,
    location: Literal["on_prem", "external"] = "external",
    *,
    provider: str = "openai",
    region: str | None = None,
    licence: str | None = "proprietary",
    openness: Openness | None = Openness.CLOSED,
) -> RouteFacts:
    return RouteFacts(
        name=name,
        provider=provider,
        location=location,
        region=region,
        licence=licence,
        openness=openness,
    )


GPT = route("gpt", region="us-east-1")
CLAUDE = route("claude", provider="anthropic", region="eu-west-1")
LLAMA = route(
    "llama",
    "on_prem",
    provider="openai_compat",
    region="eu-central-1",
    licence="llama3",
    openness=Openness.OPEN_WEIGHTS_RESTRICTED,
)
MISTRAL = route(
    "mistral",
    "on_prem",
    provider="local",
    region=None,
    licence="apache-2.0",
    openness=Openness.OPEN_WEIGHTS_PERMISSIVE,
)
ALL = (GPT, CLAUDE, LLAMA, MISTRAL)
