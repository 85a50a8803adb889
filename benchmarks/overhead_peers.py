"""Peers for ``overhead.py``: other gateways in front of the same upstream, in the same run.

Each peer is a :class:`Target` (a chat-completions URL, the headers it needs, the
process whose memory is read). Peers that are not installed are skipped with a
note, never an error:

* the Portkey OSS gateway (Node): ``npm install --prefix /tmp/portkey @portkey-ai/gateway``
  (found there, or pass ``--portkey-js``);
* LiteLLM's proxy: ``python -m venv /tmp/litellm-venv && /tmp/litellm-venv/bin/pip
  install 'litellm[proxy]'`` (found there, or pass ``--litellm-python``);
* wrk (``apt-get install wrk``), the non-Python load generator: when present the
  peer table is measured with it (a Lua script sends the POST body), else with
  this script's aiohttp client.

Three measurements use the peers: requests/s and p50 at concurrency 1, 16 and 64
(:func:`peer_table`), agent-size prompts (:func:`agent_table`) and many
concurrent streams (:func:`stream_table`).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

import agent_scan_bench

PORTKEY_JS = Path("/tmp/portkey/node_modules/@portkey-ai/gateway/build/start-server.js")
LITELLM_PYTHON = Path("/tmp/litellm-venv/bin/python")
LITELLM_KEY = "sk-bench-" + "0" * 32


@dataclass
class Target:
    """One thing to send chat completions to: the upstream itself or a gateway."""

    name: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    model: str = "bench"
    #: the same target in front of the upstream that paces its stream events
    paced: Target | None = None


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def portkey_js(arg: str | None) -> Path | None:
    path = Path(arg) if arg else PORTKEY_JS
    return path if path.is_file() and shutil.which("node") else None


def litellm_python(arg: str | None) -> Path | None:
    path = Path(arg) if arg else LITELLM_PYTHON
    return path if path.is_file() and (path.parent / "litellm").is_file() else None


def start_portkey(
    js: Path, upstream: int, paced: int, port: int, wait: Callable[[str, float], None]
) -> tuple[subprocess.Popen[bytes], Target]:
    """Portkey's gateway, headless; the upstream is named per request (its custom host)."""
    proc = subprocess.Popen(
        ["node", str(js), f"--port={port}", "--headless"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait(f"http://127.0.0.1:{port}/", 60.0)
    headers = {
        "x-portkey-provider": "openai",
        "x-portkey-custom-host": f"http://127.0.0.1:{upstream}/v1",
        "authorization": "Bearer sk-bench",
    }
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    target = Target("Portkey", url, headers, proc.pid, "bench-model")
    paced_headers = {**headers, "x-portkey-custom-host": f"http://127.0.0.1:{paced}/v1"}
    target.paced = Target("Portkey", url, paced_headers, proc.pid, "bench-model")
    return proc, target


def start_litellm(
    python: Path,
    upstream: int,
    paced: int,
    port: int,
    home: Path,
    wait: Callable[[str, float], None],
    workers: int = 1,
) -> tuple[subprocess.Popen[bytes], Target]:
    """LiteLLM's proxy in front of the upstream (and the paced one), ``workers`` processes."""
    cfg = {
        "model_list": [
            {
                "model_name": name,
                "litellm_params": {
                    "model": "openai/bench-model",
                    "api_base": f"http://127.0.0.1:{up}/v1",
                    "api_key": LITELLM_KEY,
                },
            }
            for name, up in (("bench", upstream), ("bench-paced", paced))
        ]
    }
    path = home / f"litellm-{port}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cmd = [str(python.parent / "litellm"), "--config", str(path), "--port", str(port)]
    if workers > 1:  # its uvicorn workers fail to bind here ("address already in use")
        cmd += ["--num_workers", str(workers), "--run_gunicorn"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={
            **os.environ,
            "LITELLM_LOG": "ERROR",
            "LITELLM_MASTER_KEY": LITELLM_KEY,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch at start (no internet here)
        },
    )
    try:
        wait(f"http://127.0.0.1:{port}/health/liveliness", 180.0)
    except BaseException:  # never leave it (and its workers) running
        proc.terminate()
        proc.wait(30)
        raise
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    headers = {"authorization": f"Bearer {LITELLM_KEY}"}
    target = Target("LiteLLM", url, headers, proc.pid)
    target.paced = Target("LiteLLM", url, headers, proc.pid, "bench-paced")
    return proc, target


# -- one cell -----------------------------------------------------------------------


@dataclass
class Result:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    #: requests wrk completed in the timed run (0 where not counted)
    requests: int = 0


def _lua_string(text: str) -> str:
    level = "=" * 4
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _WRK_UNITS[m.group(2)] if m else float("nan")


def run_wrk(
    target: Target, body: bytes, conc: int, seconds: float, *, warmup: bool = True
) -> Result:
    """wrk against ``target`` for ``seconds`` (after one warm-up second, unless not asked)."""
    headers = {"content-type": "application/json", **target.headers}
    script = "wrk.method = 'POST'\n"
    script += f"wrk.body = {_lua_string(body.decode())}\n"
    for k, v in headers.items():
        script += f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}\n"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    try:
        # One wrk thread: on two cores that also run the gateway, its upstream and the peers,
        # a second load thread takes CPU from what is measured rather than adding load (one
        # thread drives the upstream alone at several thousand requests/s).
        base = ["wrk", "-t", "1", "-c", str(conc), "-s", fh.name, "--latency"]
        if warmup:
            subprocess.run([*base, "-d", "1s", target.url], capture_output=True, check=True)
        out = subprocess.run(
            [*base, "-d", f"{seconds:g}s", "--timeout", "30s", target.url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        os.unlink(fh.name)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    done = re.search(r"(\d+) requests in", out)
    errors = int(non2xx.group(1)) if non2xx else 0
    errors += sum(int(x) for x in sock.groups()) if sock else 0
    return Result(
        float(rps.group(1)) if rps else 0.0,
        _wrk_ms(p50.group(1)) if p50 else float("nan"),
        _wrk_ms(p99.group(1)) if p99 else float("nan"),
        errors,
        int(done.group(1)) if done else 0,
    )


async def post_all(
    target: Target, bodies: list[bytes], conc: int, done: bytes = b"choices"
) -> tuple[list[float], float, int]:
    """POST every body (``conc`` at a time); latencies ms, wall seconds, errors."""
    headers = {"content-type": "application/json", **target.headers}
    lat: list[float] = []
    errors = 0
    todo = iter(bodies)
    conn = aiohttp.TCPConnector(limit=conc)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def worker() -> None:
            nonlocal errors
            for body in todo:
                t0 = time.perf_counter()
                try:
                    async with session.post(target.url, data=body, headers=headers) as resp:
                        data = await resp.read()
                        ok = resp.status == 200 and done in data
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                if ok:
                    lat.append((time.perf_counter() - t0) * 1000)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
    return lat, time.perf_counter() - t0, errors


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def run_python(target: Target, body: bytes, conc: int, n: int) -> Result:
    asyncio.run(post_all(target, [body] * min(50, n), conc))  # warm-up
    lat, seconds, errors = asyncio.run(post_all(target, [body] * n, conc))
    return Result(len(lat) / seconds, _pct(lat, 0.5), _pct(lat, 0.99), errors)


def _body(target: Target, messages: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"model": target.model, "messages": messages, **extra}).encode()


# -- the three tables -------------------------------------------------------------------


def peer_table(
    targets: list[Target], prompt: str, concs: tuple[int, ...], seconds: float, n: int
) -> list[str]:
    """Non-streaming chat at each concurrency: every target, wrk when installed."""
    use_wrk = shutil.which("wrk") is not None
    tool = "wrk" if use_wrk else "aiohttp (wrk not installed)"
    lines = [
        f"\nPeers in the same run, non-streaming, load from {tool}:",
        "| gateway | conc | req/s | p50 ms | added p50 ms | p99 ms | RSS MB | errors "
        "| hybridgate req/s ÷ this |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    msgs = [{"role": "user", "content": prompt}]
    for conc in concs:
        results: dict[str, Result] = {}
        for t in targets:
            body = _body(t, msgs, max_tokens=64)
            results[t.name] = (
                run_wrk(t, body, conc, seconds) if use_wrk else run_python(t, body, conc, n)
            )
        direct, hg = results.get("direct"), results.get("hybridgate")
        for t in targets:
            r = results[t.name]
            added = ratio = rss = "–"
            if t.name != "direct":
                rss = f"{rss_mb(t.pid):.0f}"
                if direct:
                    added = f"{r.p50_ms - direct.p50_ms:+.2f}"
                if hg and r.rps:
                    ratio = f"{hg.rps / r.rps:.2f}×"
            lines.append(
                f"| {t.name} | {conc} | {r.rps:,.0f} | {r.p50_ms:.2f} | {added} "
                f"| {r.p99_ms:.2f} | {rss} | {r.errors} | {ratio} |"
            )
    return lines


def conversation(target: int, turns: int, seed: int) -> list[dict[str, Any]]:
    """``agent_scan_bench``'s agent sessions without its planted findings (an e-mail
    address, a card number, a key): the default policy refuses those, and this
    benchmark measures requests that pass. Its generator draws them from
    ``SENSITIVE``, which holds harmless notes while this runs."""
    planted = agent_scan_bench.SENSITIVE[:]
    agent_scan_bench.SENSITIVE[:] = [f"see section {i} of the design notes" for i in range(4)]
    try:
        return agent_scan_bench.conversation(target, turns, seed)
    finally:
        agent_scan_bench.SENSITIVE[:] = planted


def agent_body(target: Target, body: dict[str, Any]) -> bytes:
    """One of :func:`conversation`'s requests as ``target`` takes it."""
    return _body(target, body["messages"], tools=body["tools"], max_tokens=64)


def fresh_bodies(target: Target, size: int, count: int, seed: int) -> list[bytes]:
    """``count`` agent requests of about ``size`` bytes, each with content never sent before."""
    return [agent_body(target, conversation(size, 1, seed + i)[0]) for i in range(count)]


def agent_table(targets: list[Target], sizes_kb: list[int], turns: int, seed: int) -> list[str]:
    """Agent-size prompts at concurrency 1: fresh prompts of each size, then one growing
    conversation (each turn resends the history; the gateway has seen all but the last)."""
    lines = [
        "\nAgent-size prompts, concurrency 1 (p50 over the requests; added = over direct):",
        "| prompt | requests | direct p50 ms | "
        + " | ".join(f"{t.name} added p50 ms" for t in targets if t.name != "direct")
        + " | errors ("
        + " / ".join(t.name for t in targets)
        + ") |",
        "|---|---|---|" + "---|" * (len(targets) - 1) + "---|",
    ]
    # errors: failed requests per target, in the order of the columns (direct first)
    rng = random.Random(seed)
    # (label, bodies for a target: untimed first, then timed)
    cells: list[tuple[str, Callable[[Target], tuple[list[bytes], list[bytes]]]]] = []

    def fresh(kb: int) -> Callable[[Target], tuple[list[bytes], list[bytes]]]:
        count = max(10, min(60, 1200 // kb))
        s = rng.randrange(1 << 30)
        return lambda t: ([], fresh_bodies(t, kb * 1024, count, s))

    cells += [(f"{kb} KB, fresh", fresh(kb)) for kb in sizes_kb]
    conv_seed = rng.randrange(1 << 30)
    top = max(sizes_kb) if sizes_kb else 100

    def growing(t: Target) -> tuple[list[bytes], list[bytes]]:
        bodies = [agent_body(t, b) for b in conversation(top * 1024, turns, conv_seed)]
        return bodies[:1], bodies[1:]  # turn 1 has no history yet: sent, not timed

    cells.append((f"growing history to {top} KB, turns 2–{turns}", growing))
    for label, make in cells:
        p50: dict[str, float] = {}
        errors: list[str] = []
        n = 0
        for t in targets:
            untimed, bodies = make(t)
            n = len(bodies)
            if untimed:
                asyncio.run(post_all(t, untimed, 1))
            lat, _, err = asyncio.run(post_all(t, bodies, 1))
            p50[t.name] = statistics.median(lat) if lat else float("nan")
            errors.append(str(err))
        base = p50.get("direct", float("nan"))
        lines.append(
            f"| {label} | {n} | {base:.2f} | "
            + " | ".join(f"{p50[t.name] - base:+.2f}" for t in targets if t.name != "direct")
            + f" | {' / '.join(errors)} |"
        )
    return lines


async def _streams(target: Target, body: bytes, n: int) -> tuple[list[float], list[float], int]:
    """``n`` streams at once: time to first chunk and to the end (ms), failures."""
    headers = {"content-type": "application/json", **target.headers}
    first: list[float] = []
    total: list[float] = []
    errors = 0
    conn = aiohttp.TCPConnector(limit=n)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=conn, timeout=timeout) as session:

        async def one() -> None:
            nonlocal errors
            t0 = time.perf_counter()
            t_first = None
            data = b""
            try:
                async with session.post(target.url, data=body, headers=headers) as resp:
                    async for chunk in resp.content.iter_any():
                        if t_first is None and b"data:" in chunk:
                            t_first = time.perf_counter()
                        data += chunk
                    ok = resp.status == 200 and b"[DONE]" in data
            except (aiohttp.ClientError, TimeoutError):
                ok = False
            if ok and t_first is not None:
                first.append((t_first - t0) * 1000)
                total.append((time.perf_counter() - t0) * 1000)
            else:
                errors += 1

        await asyncio.gather(*(one() for _ in range(n)))
    return first, total, errors


def stream_table(targets: list[Target], prompt: str, n: int, rounds: int) -> list[str]:
    """``n`` concurrent SSE streams from an upstream that paces its events."""
    lines = [
        f"\n{n} concurrent streams (upstream paces its events), {rounds} rounds:",
        "| gateway | first chunk p50 ms | first chunk p99 ms | added first chunk p50 ms "
        "| stream p50 ms | completed | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    msgs = [{"role": "user", "content": prompt}]
    base = float("nan")
    for t in (t.paced or t for t in targets):
        body = _body(t, msgs, max_tokens=64, stream=True)
        asyncio.run(_streams(t, body, min(n, 10)))  # warm-up
        first: list[float] = []
        total: list[float] = []
        errors = 0
        for _ in range(rounds):
            f, tot, e = asyncio.run(_streams(t, body, n))
            first += f
            total += tot
            errors += e
        p50 = _pct(first, 0.5)
        if t.name == "direct":
            base = p50
        added = f"{p50 - base:+.2f}" if t.name != "direct" else "–"
        lines.append(
            f"| {t.name} | {p50:.2f} | {_pct(first, 0.99):.2f} | {added} "
            f"| {_pct(total, 0.5):.2f} | {len(first)} | {errors} |"
        )
    return lines
