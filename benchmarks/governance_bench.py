"""Governance benchmark: how long the tighten-only check and the offline trace take.

The tighten-only check runs on every proposal shown and on every emergency
apply; the trace runs over a whole log. One run prints the median of a few
repetitions of each for policies with more and more team and key overrides,
and the trace time per policy receipt.

    .venv/bin/python benchmarks/governance_bench.py
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from typing import Any

from hybridgate.governance.audit import trace_governance
from hybridgate.governance.model import GovernanceDoc, proposal_payload
from hybridgate.governance.tighten import loosenings
from hybridgate.ledger import SigningKey
from hybridgate.policy.holder import policy_hash
from hybridgate.policy.model import PolicyConfig


def _policy(teams: int, keys: int, **base: Any) -> PolicyConfig:
    return PolicyConfig.model_validate(
        {
            **base,
            "teams": {f"t{i}": {"classes": {"person": "allow"}} for i in range(teams)},
            "keys": {f"k{i}": {"unknown": "block"} for i in range(keys)},
        }
    )


def _median(fn: Any, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_tighten(reps: int) -> None:
    print("tighten-only check (median of", reps, "runs)")
    print(f"{'teams x keys':>14} {'principals':>11} {'base changed':>13} {'one team':>10}")
    for n in (0, 5, 20, 60):
        old = _policy(n, n)
        classes = old.model_dump(mode="json")["classes"]
        base_changed = _policy(n, n, classes={**classes, "financial": "block"})
        data = old.model_dump(mode="json")
        if n:
            data["teams"]["t0"]["unknown"] = "block"
        else:
            data["classes"]["financial"] = "block"
        one_team = PolicyConfig.model_validate(data)
        a = _median(lambda o=old, b=base_changed: loosenings(o, b), reps)
        b = _median(lambda o=old, c=one_team: loosenings(o, c), reps)
        print(f"{n:>6} x {n:<5} {(n + 1) ** 2:>11} {a * 1000:>10.1f} ms {b * 1000:>7.1f} ms")


def bench_trace(versions: int, requests_per_version: int) -> None:
    alice, bob = SigningKey.generate("alice"), SigningKey.generate("bob")
    doc = GovernanceDoc(
        version=1, threshold=2, approvers=[alice.verifier().to_string(), bob.verifier().to_string()]
    )
    bodies: list[dict[str, Any]] = [
        {"kind": "governance", "receipt_id": "g1", "governance": doc.model_dump(mode="json"),
         "governance_hash": doc.hash()},
    ]  # fmt: skip
    policy = PolicyConfig()
    bodies.append(
        {"kind": "policy", "receipt_id": "p0", "approval": "bootstrap", "signatures": [],
         "policy": policy.model_dump(mode="json"), "policy_hash": policy_hash(policy),
         "governance_hash": doc.hash()}
    )  # fmt: skip
    for v in range(versions):
        new = policy.model_copy(update={"log_prompts": v % 2 == 0})
        base, h = policy_hash(policy), policy_hash(new)
        pid = f"prop_{v:024x}"
        payload = proposal_payload(proposal_id=pid, policy_hash=h, base_policy_hash=base)
        sigs = [
            {
                "approver": k.name,
                "key_id": k.key_id,
                "sig": base64.b64encode(k.sign(payload)).decode(),
            }
            for k in (alice, bob)
        ]
        bodies.append(
            {"kind": "policy", "receipt_id": f"p{v + 1}", "approval": "threshold",
             "signatures": sigs,
             "policy": new.model_dump(mode="json"), "policy_hash": h, "base_policy_hash": base,
             "proposal_id": pid, "governance_hash": doc.hash()}
        )  # fmt: skip
        bodies.extend(
            {"kind": "request", "receipt_id": f"r{v}-{i}", "policy_hash": h}
            for i in range(requests_per_version)
        )
        policy = new
    t = time.perf_counter()
    trace = trace_governance(bodies)
    dt = time.perf_counter() - t
    assert trace.ok, trace.problems[:3]
    print(
        f"offline trace: {versions} approved policies, {trace.receipts_checked} request receipts"
        f" in {dt:.3f} s ({dt / max(1, versions) * 1000:.2f} ms per policy receipt incl. its"
        f" {requests_per_version} requests)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--versions", type=int, default=200)
    ap.add_argument("--requests", type=int, default=500)
    args = ap.parse_args()
    bench_tighten(args.reps)
    bench_trace(args.versions, args.requests)


if __name__ == "__main__":
    main()
