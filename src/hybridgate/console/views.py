"""HTML for the console's pages. Pure: data in, markup out; every value is escaped.

Data the page script needs travels in ``<script type="application/json">``
blocks (never executed, so the Content-Security-Policy can forbid inline
script) with ``<`` escaped so no value can close the block.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from html import escape
from typing import Any

from hybridgate.console.charts import location_chart, spend_chart
from hybridgate.console.session import Session

STATIC = "/console/static"


def e(v: Any) -> str:
    return escape("" if v is None else str(v), quote=True)


def json_block(element_id: str, data: Any) -> str:
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{e(element_id)}">{text}</script>'


def _when(ns: Any) -> str:
    try:
        t = int(ns) / 1e9
    except (TypeError, ValueError):
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def page(title: str, body: str, *, s: Session | None, name: str) -> str:
    csrf = f'<meta name="csrf-token" content="{e(s.csrf)}">' if s else ""
    nav = ""
    if s is not None:
        links = [
            ("overview", "/console", "Overview"),
            ("approvals", "/console/approvals", "Held actions"),
            ("proposals", "/console/proposals", "Policy proposals"),
        ]
        items = "".join(
            f'<a href="{href}"{" class=current" if key == name else ""}>{label}</a>'
            for key, href, label in links
        )
        mode = "" if s.is_admin else ' <span class="badge">read-only</span>'
        nav = (
            f'<nav>{items}<span class="who">signed in as {e(s.who)}{mode}</span>'
            '<form method="post" action="/console/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{e(s.csrf)}">'
            '<button type="submit" id="logout">Sign out</button></form></nav>'
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"{csrf}<title>hybridgate · {e(title)}</title>"
        f'<link rel="stylesheet" href="{STATIC}/console.css">'
        f'<script src="{STATIC}/console.js" defer></script></head>'
        f'<body data-page="{e(name)}" data-admin="{"1" if s and s.is_admin else "0"}">'
        f"<header><h1>hybridgate</h1>{nav}</header><main>{body}</main></body></html>"
    )


def login(error: str | None, login_csrf: str) -> str:
    err = f'<p class="error" id="login-error">{e(error)}</p>' if error else ""
    body = (
        '<section class="login"><h2>Sign in</h2>'
        "<p>With the admin key, or a team's virtual key (read-only: your own traffic).</p>"
        f"{err}"
        '<form method="post" action="/console/login">'
        f'<input type="hidden" name="csrf" value="{e(login_csrf)}">'
        '<label>Key <input type="password" name="key" id="key" autocomplete="off" required>'
        '</label> <button type="submit" id="signin">Sign in</button></form></section>'
    )
    return page("sign in", body, s=None, name="login")


def _classes(body: dict[str, Any]) -> str:
    classes = body.get("data_classes") or []
    if not isinstance(classes, list) or not classes:
        return '<span class="muted">none</span>'
    return " ".join(f'<span class="tag">{e(c)}</span>' for c in classes)


def traffic_table(receipts: Sequence[dict[str, Any]]) -> str:
    rows = []
    for b in receipts:
        if b.get("kind") != "request":
            continue
        rid = e(b.get("receipt_id"))
        status = b.get("status")
        cls = "ok" if b.get("outcome") == "ok" else "bad"
        rows.append(
            f'<tr class="traffic" data-receipt="{rid}">'
            f"<td>{e(_when(b.get('time_ns')))}</td><td>{e(b.get('team'))}</td>"
            f"<td>{e(b.get('virtual_model'))}</td><td>{e(b.get('route') or '—')}</td>"
            f"<td>{e(b.get('location') or '—')}</td><td>{_classes(b)}</td>"
            f"<td>{e(b.get('action'))}</td><td>{e(b.get('masked'))}</td>"
            f'<td class="{cls}">{e(status)} {e(b.get("outcome"))}</td>'
            f'<td><a href="/console/receipts/{rid}">verify</a></td></tr>'
        )
    return (
        '<p class="muted" id="live">Refreshes every few seconds.</p>'
        '<table id="traffic"><thead><tr><th>time (UTC)</th><th>team</th><th>model</th>'
        "<th>route</th><th>location</th><th>data classes</th><th>action</th><th>masked</th>"
        "<th>status</th><th>receipt</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _what(b: dict[str, Any]) -> Any:
    if b.get("kind") == "action":
        return f"{b.get('action')} {b.get('outcome')}"
    return b.get("approval") or b.get("decision") or b.get("governance_hash") or ""


def other_receipts(receipts: Sequence[dict[str, Any]]) -> str:
    rows = [
        f"<tr><td>{e(_when(b.get('time_ns')))}</td><td>{e(b.get('kind'))}</td>"
        f"<td>{e(_what(b))}</td>"
        f'<td><a href="/console/receipts/{e(b.get("receipt_id"))}">{e(b.get("receipt_id"))}</a>'
        "</td></tr>"
        for b in receipts
        if b.get("kind") != "request"
    ]
    if not rows:
        return ""
    return (
        "<h3>Other receipts (actions, approvals, policy, governance)</h3>"
        '<table id="other-receipts"><thead><tr><th>time (UTC)</th><th>kind</th><th>what</th>'
        "<th>receipt</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _summary(u: dict[str, Any]) -> str:
    s = u["summary"]
    items = [
        ("requests", s.get("requests")),
        ("ok", s.get("ok")),
        ("refused", s.get("refused")),
        ("spent", f"${s.get('cost_usd')}"),
        ("baseline", f"${s.get('baseline_cost_usd')}"),
        ("saved", f"${s.get('saved_usd')} ({s.get('saved_pct') or 0}%)"),
    ]
    return (
        '<dl class="summary">'
        + "".join(f"<div><dt>{e(k)}</dt><dd>{e(v)}</dd></div>" for k, v in items)
        + "</dl>"
    )


def _budgets(budgets: Sequence[dict[str, Any]]) -> str:
    if not budgets:
        return '<p class="empty">No budgets configured.</p>'
    rows = []
    for b in budgets:
        c, st = b["config"], b["status"]
        for period in ("day", "month"):
            limit = c.get(f"usd_per_{period}")
            used = st[period]["usd"]
            pct = ""
            meter = ""
            if limit:
                ratio = min(float(used) / float(limit), 1.0) if float(limit) > 0 else 1.0
                pct = f"{ratio * 100:.1f}%"
                meter = f'<meter min="0" max="1" value="{ratio:.4f}"></meter>'
            rows.append(
                f"<tr><td>{e(c['scope'])} {e(c['name'])}</td><td>{period}</td>"
                f"<td>${e(used)}</td><td>{'$' + e(limit) if limit else '—'}</td>"
                f"<td>{meter} {e(pct)}</td></tr>"
            )
    return (
        '<table id="budgets"><thead><tr><th>who</th><th>period</th><th>spent</th><th>limit</th>'
        "<th>use</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


def _health(routes: Sequence[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{e(r['name'])}</td><td>{e(r['provider'])}</td><td>{e(r['location'])}</td>"
        f'<td>{e(r["region"])}</td><td class="breaker-{e(r["breaker"])}">{e(r["breaker"])}</td>'
        f"<td>{e(r['latency_ewma_ms'] if r['latency_ewma_ms'] is not None else '—')}</td></tr>"
        for r in routes
    )
    return (
        '<table id="routes"><thead><tr><th>route</th><th>provider</th><th>location</th>'
        "<th>region</th><th>breaker</th><th>latency (EWMA ms)</th></tr></thead><tbody>"
        + rows
        + "</tbody></table>"
    )


def overview(
    s: Session,
    receipts: Sequence[dict[str, Any]],
    usage: dict[str, Any],
    budgets: Sequence[dict[str, Any]],
    routes: Sequence[dict[str, Any]],
    policy_hash: str,
) -> str:
    body = (
        f"<section><h2>Spend and savings</h2>{_summary(usage)}"
        f"{spend_chart(usage['days'])}</section>"
        f"<section><h2>Where requests went</h2>{location_chart(usage['locations'])}</section>"
        f"<section><h2>Recent traffic</h2>{traffic_table(receipts)}{other_receipts(receipts)}"
        "</section>"
        f"<section><h2>Budgets</h2>{_budgets(budgets)}</section>"
        f"<section><h2>Routes and breakers</h2>{_health(routes)}"
        f'<p class="muted">active policy <code id="policy-hash">{e(policy_hash)}</code></p>'
        "</section>"
    )
    return page("overview", body, s=s, name="overview")


def receipt(s: Session, rid: str) -> str:
    body = (
        f'<section id="receipt" data-receipt-id="{e(rid)}"><h2>Receipt <code>{e(rid)}</code></h2>'
        '<p id="verdict" class="verdict pending" data-verdict="pending">Verifying in this'
        " browser…</p>"
        '<ol id="checks" class="checks"></ol>'
        '<h3>Log key</h3><p class="muted">The page checks the receipt against this key. Pin the'
        " key you got from your auditor so the page does not have to trust this server.</p>"
        '<p><code id="log-key"></code></p>'
        '<p><input id="pin-key" size="70" placeholder="name+keyid+base64 key">'
        ' <button id="pin" type="button">Pin key</button>'
        ' <button id="unpin" type="button">Forget pinned key</button></p>'
        '<h3>Receipt body</h3><pre id="receipt-body"></pre></section>'
    )
    return page(f"receipt {rid}", body, s=s, name="receipt")


def key_panel() -> str:
    return (
        '<section id="key-panel"><h3>Your approver key</h3>'
        '<p id="key-status" data-loaded="0">No key loaded in this browser.</p>'
        '<p class="muted">Load your key file (from <code>hybridgate approvals keygen</code>) or'
        " generate one here. It is imported as a non-extractable WebCrypto key and kept in"
        " this browser only; the gateway sees signatures, never the key.</p>"
        '<p><textarea id="key-text" rows="2" cols="70" placeholder="PRIVATE+KEY+name+…">'
        '</textarea><br><input type="file" id="key-file">'
        ' <button id="key-load" type="button">Load key</button>'
        ' <button id="key-forget" type="button">Forget key</button></p>'
        '<p><input id="gen-name" placeholder="name"> <button id="key-generate" type="button">'
        'Generate a key in this browser</button></p><p><code id="key-public"></code></p>'
        '<p id="action-result" role="status"></p></section>'
    )


def approvals(s: Session, held: Sequence[dict[str, Any]]) -> str:
    items = []
    for h in held:
        aid = e(h.get("approval_id"))
        buttons = (
            f'<button type="button" class="approve" data-id="{aid}">Approve</button> '
            f'<button type="button" class="deny" data-id="{aid}">Deny</button>'
            if s.is_admin
            else ""
        )
        params = json.dumps(h.get("params"), indent=2, sort_keys=True)
        items.append(
            f'<article class="held" id="held-{aid}"><h3>{e(h.get("action"))}'
            f" <small>by {e(h.get('agent_id'))} (team {e(h.get('team'))})</small></h3>"
            f"<p>approval <code>{aid}</code>, params hash <code>{e(h.get('params_hash'))}</code>"
            f"</p><pre>{e(params)}</pre>{buttons}</article>"
        )
    listing = "".join(items) or '<p class="empty" id="no-held">Nothing is waiting.</p>'
    panel = key_panel() if s.is_admin else ""
    body = f"<section><h2>Held agent actions</h2>{listing}</section>{panel}" + json_block(
        "held-data", list(held)
    )
    return page("held actions", body, s=s, name="approvals")


def _history(history: Sequence[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{e(_when(v.get('applied_ns')))}</td><td><code>{e(v['policy_hash'][:16])}</code>"
        f"</td><td>{e(v.get('approval'))}</td>"
        f"<td>{e(', '.join(x['approver'] for x in v.get('signers') or []) or '—')}</td>"
        f'<td><a href="/console/receipts/{e(v.get("receipt_id"))}">{e(v.get("receipt_id"))}</a>'
        "</td></tr>"
        for v in history
    )
    return (
        '<h3>Applied policies</h3><table id="policy-history"><thead><tr><th>applied (UTC)</th>'
        "<th>policy</th><th>approval</th><th>signed by</th><th>receipt</th></tr></thead><tbody>"
        + rows
        + "</tbody></table>"
    )


def proposals(
    s: Session,
    open_: Sequence[dict[str, Any]],
    status: dict[str, Any] | None,
    history: Sequence[dict[str, Any]] = (),
) -> str:
    if status is None:
        body = (
            '<section><h2>Policy proposals</h2><p class="empty">Governance is not'
            " configured.</p></section>"
        )
        return page("policy proposals", body, s=s, name="proposals")
    items = []
    for p in open_:
        pid = e(p["proposal_id"])
        buttons = (
            f'<button type="button" class="sign" data-id="{pid}">Sign</button> '
            f'<button type="button" class="apply" data-id="{pid}">Apply</button>'
            if s.is_admin
            else ""
        )
        signers = ", ".join(p.get("valid_signers") or []) or "nobody yet"
        tight = (
            '<p class="ok">Tightens only: one approver may apply it as an emergency change.</p>'
            if p.get("tightens_only")
            else ""
        )
        items.append(
            f'<article class="proposal" id="proposal-{pid}"><h3><code>{pid}</code></h3>'
            f"<p>{e(p.get('note'))}</p>"
            f"<p>policy <code>{e(p['policy_hash'])}</code> replacing"
            f" <code>{e(p['base_policy_hash'])}</code></p>"
            f'<p class="signers">signed by {e(signers)} ({len(p.get("valid_signers") or [])}'
            f" of {e(p.get('threshold'))})</p>{tight}"
            f'<pre class="diff">{e(p.get("diff"))}</pre>{buttons}</article>'
        )
    listing = "".join(items) or '<p class="empty">No open proposals.</p>'
    approvers = ", ".join(a["name"] for a in status["approvers"])
    panel = key_panel() if s.is_admin else ""
    body = (
        f"<section><h2>Policy proposals</h2><p>Governance version"
        f" {e(status['governance_version'])}: {e(status['threshold'])} of {e(approvers)}.</p>"
        f"{listing}{_history(history)}</section>{panel}" + json_block("proposal-data", list(open_))
    )
    return page("policy proposals", body, s=s, name="proposals")


def error_page(s: Session | None, status: int, message: str) -> str:
    return page(
        "error",
        f'<section><h2>{status}</h2><p class="error">{e(message)}</p></section>',
        s=s,
        name="error",
    )
