"""Stale facts and config findings, as pure functions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from hybridgate.planner.catalog import load_catalog
from hybridgate.planner.check import config_findings, stale_facts
from planner.planner_samples import good_entry

TODAY = dt.date(2026, 12, 4)


def _entry(checked: str | None) -> dict[str, Any]:
    e = good_entry()
    for group in ("release", "openness", "licence", "params", "architecture"):
        e[group]["checked"] = checked
    for t in e["throughput"]:
        t["checked"] = checked
    return e


def test_recently_checked_facts_are_not_listed_old_and_unchecked_are() -> None:
    cat = load_catalog([_entry("2026-11-01")])
    assert not [s for s in stale_facts(cat, TODAY, 180) if s.model == "acme-7b"]
    cat = load_catalog([_entry("2026-01-01")])
    old = [s for s in stale_facts(cat, TODAY, 180) if s.model == "acme-7b"]
    assert old and all(s.age_days == 337 and "337 days ago" in s.reason for s in old)
    assert not [s for s in stale_facts(cat, TODAY, 400) if s.model == "acme-7b"]
    cat = load_catalog([_entry(None)])
    never = [s for s in stale_facts(cat, TODAY, 10_000) if s.model == "acme-7b"]
    assert {s.group for s in never} >= {"release", "licence", "throughput[0]"}
    assert all("never" in s.reason for s in never)


def test_old_prices_are_stale_even_when_checked() -> None:
    cat = load_catalog()
    stale = {(s.model, s.group): s for s in stale_facts(cat, TODAY, 180)}
    assert "price as of 2024-08-06" in stale[("gpt-4o", "pricing")].reason


def test_config_findings_by_status() -> None:
    cat = load_catalog()
    raw = {
        "routes": [
            {"name": "a", "model": "gemini-1.5-pro", "location": "external"},
            {"name": "b", "model": "claude-3-opus-20240229", "location": "external"},
            {"name": "c", "model": "claude-haiku-4-5-20251001", "location": "external"},
            {"name": "d", "model": "claude-haiku-4-5", "location": "external"},
            {"name": "g", "model": "claude-sonnet-4-5-20250929", "location": "external"},
            {"name": "h", "model": "gpt-4o", "location": "external"},
            {"name": "e", "model": "my-private-model", "location": "external"},
            {"name": "f", "model": "gemini-1.5-pro", "location": "on_prem"},
            "not a mapping",
        ]
    }
    found = {f.route: f for f in config_findings(cat, raw, TODAY)}
    assert found["a"].severity == "retired" and "gemini-2.5-pro" in found["a"].message
    assert found["b"].severity == "retired"  # deprecated, past its 2026-01-05 retirement
    before = {f.route: f for f in config_findings(cat, raw, dt.date(2025, 12, 1))}
    assert before["b"].severity == "deprecated" and "2026-01-05" in before["b"].message
    assert "c" not in found  # active and pinned
    assert found["d"].severity == "moving" and "claude-haiku-4-5-20251001" in found["d"].message
    # retired on 2026-11-30 (after the catalog's stored-copy check): the replacement is named
    assert found["g"].severity == "retired" and "claude-sonnet-5-5" in found["g"].message
    assert found["h"].severity == "deprecated" and "2027-01-14" in found["h"].message
    assert found["e"].severity == "unknown"
    assert "f" not in found
    assert config_findings(cat, {"routes": "nope"}, TODAY) == []
    assert config_findings(cat, {}, TODAY) == []
