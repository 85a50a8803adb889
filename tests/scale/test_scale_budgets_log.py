"""Three replicas, one PostgreSQL and one Redis: budgets exact, one log, proofs and promises."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path

import httpx
from typer.testing import CliRunner

from hybridgate.cli.ledger_cmd import receipt_app
from hybridgate.ledger.receipt import PROMISE_FORMAT, verify_bundle
from scale.scale_harness import burst, cluster


def test_three_replicas_200_requests_budget_for_100(
    tmp_path: Path, pg_dsn: str, redis: str
) -> None:
    budgets = [{"scope": "team", "name": "race", "usd_per_day": 1.0}]
    with cluster(tmp_path, pg_dsn, redis, replicas=3, budgets=budgets) as c:
        gw = c.gws[0]
        key = gw.keys.create("race")
        c.onprem.set_latency(0.05)
        got = asyncio.run(burst(c.urls, key, 200))
        responses = [r for r in got if isinstance(r, httpx.Response)]
        assert len(responses) == 200, [r for r in got if not isinstance(r, httpx.Response)]
        codes = [r.status_code for r in responses]
        ok = codes.count(200)
        assert ok + codes.count(429) == 200, codes
        # Each request reserves its worst case ($0.01) and settles its actual cost (fewer
        # tokens than max_tokens), so more than 100 may fit; what may never happen is spend
        # above the budget, on any replica or all of them together.
        assert 1 <= ok < 200
        for g in c.gws:  # let every replica's settling thread finish
            g.budgets.close()  # type: ignore[union-attr]
        status = gw.budgets.status("team", "race")
        assert Decimal(status["day"]["usd"]) <= Decimal("1.00")
        assert status["day"]["usd_reserved"] == "0"
        # usage from every replica, in one place
        gw.store.write_sync(lambda conn: None)
        for g in c.gws:
            g.store.write_sync(lambda conn: None)
        assert Decimal(str(gw.usage.summary()["cost_usd"])) <= Decimal("1.00")
        # every response a client got has its receipt in the one log, which verifies
        report = c.verify(gw)
        assert report.ok, report.error
        ids = {r.headers["x-hybridgate-receipt"] for r in responses}
        assert len(ids) == 200
        for rid in ids:
            assert gw.ledger.get_receipt(rid) is not None
        assert report.size >= 200


def test_promise_then_proof_and_cli_verify(tmp_path: Path, pg_dsn: str, redis: str) -> None:
    # a sequencer interval of 10 minutes: nothing merges until the test steps it
    store = {"sequencer_interval_ms": 600_000}
    with cluster(tmp_path, pg_dsn, redis, replicas=2, store=store) as c:
        a, _ = c.gws
        key = a.keys.create("t")
        r = httpx.post(
            c.urls[1] + "/v1/chat/completions",
            headers={"authorization": f"Bearer {key}"},
            json={"model": "llama-onprem", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        assert r.status_code == 200
        rid = r.headers["x-hybridgate-receipt"]
        doc = httpx.get(
            c.urls[0] + f"/v1/receipts/{rid}", headers={"authorization": f"Bearer {key}"}
        ).json()
        assert doc["format"] == PROMISE_FORMAT
        keys = a.ledger_verifiers()
        assert verify_bundle(doc, keys) is None
        tampered = {**doc, "promise": {**doc["promise"], "receipt_id": "rcpt_other00"}}
        assert verify_bundle(tampered, keys) is not None
        pub = ",".join(k.to_string() for k in keys)
        _cli_verify(tmp_path / "promise.json", doc, pub, "promise of inclusion")
        forged = {**doc, "promise": {**doc["promise"], "timestamp_ns": "1"}}
        assert verify_bundle(forged, keys) == "promise signature does not verify"
        _cli_verify(tmp_path / "forged.json", forged, pub, "INVALID")
        # the leading replica's sequencer merges it; the same URL now serves the proof
        assert sum(g.ledger.sequencer.step() for g in c.gws) == 1  # type: ignore[attr-defined]
        doc2 = httpx.get(
            c.urls[0] + f"/v1/receipts/{rid}", headers={"authorization": f"Bearer {key}"}
        ).json()
        assert "inclusion_proof" in doc2 and verify_bundle(doc2, keys) is None
        assert doc2["receipt"] == doc["receipt"]  # the same signed receipt, now proven
        _cli_verify(tmp_path / "bundle.json", doc2, pub, "valid: receipt")
        assert c.verify(a).ok


def _cli_verify(path: Path, doc: dict[str, object], pub: str, expect: str) -> None:
    path.write_text(json.dumps(doc))
    r = CliRunner().invoke(receipt_app, ["verify", str(path), "--key", pub])
    assert expect in r.output, r.output
    assert (r.exit_code == 0) == (expect != "INVALID")
