"""Fault injection: scanner, policy, on-prem route and store failures fail closed."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from gateway_harness import ADMIN_KEY, running_gateway
from hybridgate.scan.findings import ScanResult

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


class ExplodingScanner:
    def scan(self, text: str) -> ScanResult:
        raise RuntimeError("detector crashed")


def test_scanner_raising_confines_to_on_prem(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as h:
        h.pipeline.scanner = ExplodingScanner()  # type: ignore[assignment]
        with pytest.raises(openai.APIStatusError) as e:
            h.openai().chat.completions.create(
                model="frontier", messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}]
            )
        assert e.value.status_code == 503
        assert "4111" not in str(e.value.body)
        raw = h.openai().chat.completions.with_raw_response.create(
            model="any", messages=[{"role": "user", "content": "card 4111 1111 1111 1111"}]
        )
        assert raw.headers["x-hybridgate-route"] == "llama-onprem"
        assert not h.external.requests and not h.claude.requests


def test_policy_evaluation_failure_sends_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybridgate.pipeline.decision as decision

    def broken(*a: object, **k: object) -> object:
        raise ValueError("policy bug")

    with running_gateway(tmp_path) as h:
        monkeypatch.setattr(decision, "evaluate", broken)
        with pytest.raises(openai.APIStatusError) as e:
            h.openai().chat.completions.create(
                model="any", messages=[{"role": "user", "content": "hi"}]
            )
        assert e.value.status_code == 503
        assert isinstance(e.value.body, dict) and e.value.body["code"] == "policy_unavailable"
        assert not h.external.requests and not h.onprem.requests and not h.claude.requests


def test_invalid_policy_reload_keeps_last_good(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as h:
        before = httpx.get(h.url + "/v1/admin/policy", headers=ADMIN).json()["policy_hash"]
        bad = httpx.post(
            h.url + "/v1/admin/policy/reload",
            headers=ADMIN,
            json={"classes": {"secret": "allow-everything"}},
        )
        assert bad.status_code == 400 and "last good policy" in bad.json()["error"]["message"]
        assert bad.json()["policy_hash"] == before
        # The secret is still blocked.
        with pytest.raises(openai.PermissionDeniedError):
            h.openai().chat.completions.create(
                model="any", messages=[{"role": "user", "content": "key AKIAZ7QX4MN2PL8RT5VW"}]
            )
        good = httpx.post(
            h.url + "/v1/admin/policy/reload", headers=ADMIN, json={"classes": {"contact": "allow"}}
        )
        assert good.status_code == 200 and good.json()["policy_hash"] != before


def test_on_prem_route_down_is_503_never_external(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as h:
        h.onprem.stop()
        with pytest.raises(openai.APIStatusError) as e:
            h.openai().chat.completions.create(
                model="any", messages=[{"role": "user", "content": "SSN 536-22-1234 please"}]
            )
        assert e.value.status_code == 503
        body = e.value.body
        assert isinstance(body, dict) and body["code"] == "no_route_available"
        assert "on-prem" in body["message"] and "536-22-1234" not in body["message"]
        assert not h.external.requests and not h.claude.requests


def test_store_unavailable_fails_closed(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as h:
        h.openai().chat.completions.create(
            model="any", messages=[{"role": "user", "content": "warm"}]
        )
        h.gw.store.close()
        with pytest.raises(openai.APIStatusError) as e:
            h.openai().chat.completions.create(
                model="any", messages=[{"role": "user", "content": "SSN 536-22-1234"}]
            )
        assert e.value.status_code == 503
        assert "536-22-1234" not in h.external_text()
