"""``hybridgate demo``: the whole gateway end to end, no keys, no network.

It starts the real gateway on embedded defaults (SQLite in a temporary home,
generated signing key) in front of two loopback stand-ins — an external
"frontier API" and an "on-prem model" — and drives a scripted workload
through the official ``openai`` SDK. Everything printed is measured from that
run: nothing in this module is a canned result.
"""

from __future__ import annotations

import base64
import os
import re
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hybridgate.actions import approval_payload
from hybridgate.app import create_app
from hybridgate.config import parse_config
from hybridgate.distill.demo_step import run_flywheel_demo
from hybridgate.ledger import SigningKey, VerifierKey, verify_bundle, verify_log
from hybridgate.runtime import Gateway
from hybridgate.server import ServerThread
from hybridgate.testing import OpenAIUpstream

ADMIN_KEY = "demo-admin-" + os.urandom(8).hex()

# (label, prompt, stream). The sensitive values are synthetic and checksum-valid.
WORKLOAD: list[tuple[str, str, bool]] = [
    ("clean question", "Explain what a Merkle tree is in two sentences.", False),
    ("card number", "Refund the charge on card 4111 1111 1111 1111, it was a duplicate.", False),
    (
        "IBAN + e-mail",
        "Send the invoice to jane.doe@example.com, pay to GB82 WEST 1234 5698 7654 32.",
        True,
    ),
    ("US SSN", "Check whether SSN 536-22-1234 matches the applicant's file.", False),
    (
        "health record",
        "Patient MRN: 00482913, DOB: 1984-03-12, summarize the discharge notes.",
        False,
    ),
    ("confidential term", "Draft a status update for Project Bluebird for the board.", False),
    ("AWS secret", "Why does boto3 reject my key AKIAZ7QX4MN2PL8RT5VW?", False),
    ("streamed clean", "List three uses of a hash function.", True),
]
SENSITIVE = [
    "4111 1111 1111 1111",
    "jane.doe@example.com",
    "GB82 WEST 1234 5698 7654 32",
    "536-22-1234",
    "00482913",
    "Project Bluebird",
    "AKIAZ7QX4MN2PL8RT5VW",
]
QUALITY_BATCH = [
    "What is the capital of France?",
    "Translate 'good morning' into Spanish.",
    "Give a synonym for 'happy'.",
    "What colour is the sky on a clear day?",
    "Name the largest planet in the solar system.",
    "Spell 'necessary' backwards.",
    "A train leaves at 3:40 pm and travels 213 km at 71 km/h; a second train leaves 25 minutes"
    " later at 93 km/h on the same track. At what time and distance does it catch up?",
    "Prove that the square root of 2 is irrational, step by step.",
    "Let f(x) = x^3 - 6x^2 + 11x - 6. Find all roots and the intervals where f is decreasing.",
    "In a group of 23 people, what is the probability that two share a birthday? Show the math.",
    "Which is larger, 9^10 or 10^9, and by how much? Show the arithmetic.",
    "Summarize the causes of the 2008 financial crisis and the role of CDOs and rating agencies.",
]


@contextmanager
def _executor_standin() -> Iterator[tuple[ServerThread, list[dict[str, Any]]]]:
    """The system an agent acts on: records every action forwarded to it."""
    received: list[dict[str, Any]] = []

    async def execute(request: Request) -> JSONResponse:
        received.append(await request.json())
        return JSONResponse({"executed": True})

    app = Starlette(routes=[Route("/execute", execute, methods=["POST"])])
    with ServerThread(app) as server:
        yield server, received


def _config(home: Path, frontier: OpenAIUpstream, onprem: OpenAIUpstream, executor: str) -> Any:
    real_openai = bool(os.environ.get("OPENAI_API_KEY"))
    ext: dict[str, Any] = {
        "name": "frontier-api",
        "provider": "openai",
        "model": "gpt-4o-mini" if real_openai else "gpt-4o",
        "location": "external",
        "region": "us",
        "licence": "proprietary",
        "openness": "closed",
        "price": {"input_per_mtok": 2.5, "output_per_mtok": 10.0},
    }
    if real_openai:
        ext["api_key"] = "${OPENAI_API_KEY}"
    else:
        ext["base_url"] = frontier.base_url
    return parse_config(
        {
            "home": str(home),
            "server": {"admin_key": ADMIN_KEY},
            "ledger": {"checkpoint_interval_s": 3600},
            "routes": [
                ext,
                {
                    "name": "onprem-llama",
                    "provider": "openai_compat",
                    "base_url": onprem.base_url,
                    "model": "llama-3.1-8b-instruct",
                    "location": "on_prem",
                    "region": "eu",
                    "licence": "llama-community",
                    "openness": "open_weights_restricted",
                    "price": {"hourly_usd": 1.2, "tokens_per_second": 1500},
                },
            ],
            "models": {
                "auto": {
                    "strategy": "quality",
                    "routes": ["onprem-llama", "frontier-api"],
                    "strong": "frontier-api",
                    "weak": "onprem-llama",
                    "strong_share": 0.4,
                },
                "any": {"strategy": "fallback", "routes": ["frontier-api", "onprem-llama"]},
            },
            "scanner": {"terms": ["Project Bluebird"]},
            "policy": {
                "actions": [
                    {
                        "name": "big-transfers",
                        "action": "EXECUTE_TRANSACTION",
                        "effect": "require_approval",
                        "when": [{"param": "amount", "op": "gt", "value": 1000}],
                    },
                    {"name": "transfers", "action": "EXECUTE_TRANSACTION", "effect": "allow"},
                    {"name": "no-deletes", "action": "DELETE_*", "effect": "deny"},
                ]
            },
            "actions": {"hold_timeout_s": 3, "receipt_ttl_s": 120, "executor_url": executor},
        },
        source="<demo>",
    )


def _usd(v: Any) -> str:
    return f"${Decimal(str(v)):.6f}"


def run_demo(console: Console | None = None) -> int:
    """Run the demo; returns a process exit code (non-zero if a check failed)."""
    console = console or Console(width=max(120, Console().width))
    failures: list[str] = []
    home = Path(tempfile.mkdtemp(prefix="hybridgate-demo-"))
    real_openai = bool(os.environ.get("OPENAI_API_KEY"))
    with (
        OpenAIUpstream(latency_s=0.12) as frontier,
        OpenAIUpstream(latency_s=0.03) as onprem,
        _executor_standin() as (executor, executed),
    ):
        config = _config(home, frontier, onprem, executor.base_url + "/execute")
        app = create_app(config)
        gw: Gateway = app.state.gateway
        with ServerThread(app) as server:
            console.print(
                Panel.fit(
                    f"hybridgate demo — gateway on {server.base_url}, home {home}\n"
                    f"stand-ins: [bold]frontier-api[/] (external"
                    f"{', the REAL OpenAI API' if real_openai else ', loopback stand-in'}) "
                    f"and [bold]onprem-llama[/] (on-prem, loopback stand-in)\n"
                    "stand-in latencies are set to 120 ms (frontier) and 30 ms (on-prem); "
                    "the stand-ins answer 'echo: <what they received>'",
                    title="hybridgate",
                )
            )
            key = gw.keys.create("demo", name="demo-app")
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=key, max_retries=0)
            receipts = _workload(console, client, server.base_url, key, failures)
            _leak_check(console, frontier, real_openai, failures)
            _quality_batch(console, client, server.base_url, key, failures)
            _actions(console, server.base_url, key, executed, failures)
            _verify(console, gw, server.base_url, key, receipts, failures)
    _adapter_tools(console, failures)
    run_flywheel_demo(console, failures)
    if failures:
        console.print("[bold red]demo checks failed:[/] " + "; ".join(failures))
        return 1
    console.print("[bold green]all demo checks passed[/]")
    return 0


def _adapter_tools(console: Console, failures: list[str]) -> None:
    """A frontier agent stand-in calls local task adapters as MCP tools; savings printed."""
    from hybridgate.serving.demo_step import run_adapter_tools_step

    run_adapter_tools_step(console, failures)


def _workload(
    console: Console, client: openai.OpenAI, base_url: str, key: str, failures: list[str]
) -> list[str]:
    receipts: list[str] = []
    statuses: list[str] = []
    for i, (_label, prompt, stream) in enumerate(WORKLOAD, 1):
        try:
            if stream:
                with client.chat.completions.with_streaming_response.create(
                    model="any",
                    messages=[{"role": "user", "content": prompt}],
                    stream=True,
                    stream_options={"include_usage": True},
                ) as resp:
                    headers = resp.headers
                    for _ in resp.iter_lines():
                        pass
                statuses.append("200 stream")
            else:
                raw = client.chat.completions.with_raw_response.create(
                    model="any", messages=[{"role": "user", "content": prompt}]
                )
                headers = raw.headers
                raw.parse()
                statuses.append("200")
        except openai.APIStatusError as err:
            headers = err.response.headers
            code = err.body.get("code", "") if isinstance(err.body, dict) else ""
            statuses.append(f"{err.status_code} {code}")
        rid = headers.get("x-hybridgate-receipt", "")
        receipts.append(rid)
        if not rid:
            failures.append(f"request {i} has no receipt header")
    # The table is read back from the signed receipts, not from client-side notes.
    table = Table(title="1. Mixed workload via the openai SDK, model 'any' (frontier first)")
    for col in ("#", "request", "data classes", "action", "masked", "route (location)"):
        table.add_column(col)
    table.add_column("tokens", justify="right")
    table.add_column("cost USD", justify="right")
    table.add_column("status")
    auth = {"authorization": f"Bearer {key}"}
    for i, ((label, _, _), rid, status) in enumerate(
        zip(WORKLOAD, receipts, statuses, strict=True), 1
    ):
        r = httpx.get(f"{base_url}/v1/receipts/{rid}", headers=auth).json()["receipt"]
        where = f"{r['route']} ({r['location']})" if r.get("route") else "-"
        table.add_row(
            str(i),
            label,
            ", ".join(r["data_classes"]) or "-",
            r["action"],
            str(r["masked"]),
            where,
            f"{r['tokens_in']}+{r['tokens_out']}",
            f"{Decimal(r['cost_usd']):.6f}",
            status,
        )
    console.print(table)
    return receipts


def _leak_check(
    console: Console, frontier: OpenAIUpstream, real: bool, failures: list[str]
) -> None:
    if real:
        console.print("2. Leak check: skipped — the external route is the real OpenAI API.")
        return
    seen = frontier.all_text()
    digits = re.sub(r"\D", "", seen)
    leaked = [
        v
        for v in SENSITIVE
        if v in seen or (len(re.sub(r"\D", "", v)) >= 8 and re.sub(r"\D", "", v) in digits)
    ]
    n = len(frontier.requests)
    if leaked:
        failures.append("sensitive values reached the external stand-in")
        console.print(f"2. Leak check: [bold red]LEAK[/] — {len(leaked)} value(s) reached it")
    else:
        console.print(
            f"2. Leak check: the external stand-in recorded {n} request(s); "
            f"[bold green]none of the {len(SENSITIVE)} sensitive values[/] appears in them."
        )
    card = [t for t in (_last_user(r.body) for r in frontier.requests) if "Refund" in t]
    if card:
        console.print(f"   what it received for request 2: [italic]{escape(card[0])}[/]")


def _last_user(body: Any) -> str:
    msgs = body.get("messages") if isinstance(body, dict) else None
    if isinstance(msgs, list):
        for m in reversed(msgs):
            if (
                isinstance(m, dict)
                and m.get("role") == "user"
                and isinstance(m.get("content"), str)
            ):
                return str(m["content"])
    return ""


def _quality_batch(
    console: Console, client: openai.OpenAI, base_url: str, key: str, failures: list[str]
) -> None:
    routes: dict[str, int] = {}
    since = time.time_ns()
    for prompt in QUALITY_BATCH:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": prompt}]
        )
        r = raw.headers.get("x-hybridgate-route", "?")
        routes[r] = routes.get(r, 0) + 1
    usage = httpx.get(
        f"{base_url}/v1/usage?since_ns={since}", headers={"authorization": f"Bearer {key}"}
    ).json()
    s = usage["summary"]
    table = Table(title="3. Quality-routed batch: model 'auto', target strong share 40%")
    table.add_column("measure")
    table.add_column("value")
    for r, n in sorted(routes.items()):
        table.add_row(f"prompts routed to {r}", str(n))
    table.add_row("spend", _usd(s["cost_usd"]))
    table.add_row("same tokens, all on the strongest route", _usd(s["baseline_cost_usd"]))
    table.add_row("saved", f"{_usd(s['saved_usd'])} ({s['saved_pct']}%)")
    if s.get("time_saved_ms") is not None:
        table.add_row("time saved vs the strongest route's average", f"{s['time_saved_ms']:.1f} ms")
    console.print(table)
    if sum(routes.values()) != len(QUALITY_BATCH):
        failures.append("quality batch incomplete")


def _actions(
    console: Console, base_url: str, key: str, executed: list[dict[str, Any]], failures: list[str]
) -> None:
    auth = {"authorization": f"Bearer {key}"}
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    alice = SigningKey.generate("alice")  # the approver's own key, not the gateway's
    table = Table(title="4. Agent actions: authorize, approve, gate (executor stand-in behind)")
    for col in ("action", "authorize", "gate", "executor has received"):
        table.add_column(col)

    def row(label: str, a: httpx.Response | None, g: httpx.Response | None) -> None:
        table.add_row(
            label,
            "-" if a is None else f"{a.status_code} {a.json()['verdict']}",
            "not attempted" if g is None else f"{g.status_code} {g.json()['verdict']}",
            str(len(executed)),
        )

    def transfer(amount: int) -> dict[str, Any]:
        return {
            "agent_id": "agent-7",
            "action": "EXECUTE_TRANSACTION",
            "params": {"amount": amount, "to": "ACME"},
        }

    with httpx.Client(base_url=base_url, timeout=30) as http:
        http.post(
            "/v1/admin/approvers", headers=admin, json={"public_key": alice.verifier().to_string()}
        )
        small = transfer(250)
        a1 = http.post("/v1/actions/authorize", headers=auth, json=small)
        g1 = http.post("/v1/gate", json={**small, "receipt": a1.json().get("receipt")})
        row("transfer 250 (policy: allow)", a1, g1)

        big = transfer(5000)
        with ThreadPoolExecutor(1) as pool:
            held = pool.submit(http.post, "/v1/actions/authorize", headers=auth, json=big)
            approval = _wait_pending(http, admin)
            if approval is not None:
                _approve(http, admin, alice, approval)
            a2 = held.result()
        g2 = http.post("/v1/gate", json={**big, "receipt": a2.json().get("receipt")})
        row("transfer 5000 (held; alice approves)", a2, g2)

        a3 = http.post("/v1/actions/authorize", headers=auth, json=transfer(9000))
        row("transfer 9000 (held; nobody decides)", a3, None)

        tampered = {**small, "params": {"amount": 25000, "to": "ACME"}}
        g4 = http.post("/v1/gate", json={**tampered, "receipt": a1.json().get("receipt")})
        row("receipt of the 250 transfer, amount changed", None, g4)
    console.print(table)
    expected = (g1.status_code, g2.status_code, a3.status_code, g4.status_code, len(executed))
    if expected != (200, 200, 408, 403, 2):
        failures.append(f"action gate did not behave as expected: {expected}")


def _approve(
    http: httpx.Client, admin: dict[str, str], approver: SigningKey, approval: dict[str, Any]
) -> None:
    payload = approval_payload(
        approval_id=approval["approval_id"],
        decision="approve",
        action=approval["action"],
        params_hash=approval["params_hash"],
        agent_id=approval["agent_id"],
    )
    http.post(
        f"/v1/admin/approvals/{approval['approval_id']}",
        headers=admin,
        json={
            "decision": "approve",
            "approver": approver.name,
            "signature": base64.b64encode(approver.sign(payload)).decode(),
        },
    )


def _wait_pending(http: httpx.Client, admin: dict[str, str]) -> dict[str, Any] | None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        data = http.get("/v1/admin/approvals?status=pending", headers=admin).json().get("data", [])
        if data:
            return dict(data[0])
        time.sleep(0.05)
    return None


def _verify(
    console: Console, gw: Gateway, base_url: str, key: str, receipts: list[str], failures: list[str]
) -> None:
    auth = {"authorization": f"Bearer {key}"}
    pub = httpx.get(base_url + "/v1/log/public-key", headers=auth).json()
    keys = [VerifierKey.parse(k) for k in pub["keys"]]
    bundle = httpx.get(f"{base_url}/v1/receipts/{receipts[1]}", headers=auth).json()
    problem = verify_bundle(bundle, keys)
    body = bundle["receipt"]
    verdict = "[bold green]valid[/]" if problem is None else f"[bold red]{problem}[/]"
    console.print(
        f"5. Receipt {receipts[1]} (request 2): action={body['action']} route={body['route']}"
        f" location={body['location']} classes={body['data_classes']}\n"
        f"   offline check of its bundle (signature, inclusion proof, checkpoint): {verdict}"
    )
    if problem is not None:
        failures.append("receipt bundle did not verify")
    report = verify_log(gw.store, keys)
    result = "[bold green]ok[/]" if report.ok else f"[bold red]{report.error}[/]"
    console.print(f"   whole-log verification over {report.size} receipts: {result}")
    if not report.ok:
        failures.append("log verification failed")
    console.print(Panel(gw.ledger.checkpoint(), title="signed checkpoint (C2SP)"))
