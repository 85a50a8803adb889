"""SIGKILL the gateway under sustained load, restart it: the log verifies and
every response a client received completely has its receipt in the log.
Also: SIGHUP reloads the policy from the file, refusing an invalid one."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import yaml

from gateway_harness import ADMIN_KEY
from hybridgate.testing import OpenAIUpstream

HG = [sys.executable, "-m", "hybridgate.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write_config(tmp: Path, upstream: str, port: int, **extra: object) -> Path:
    cfg = {
        "home": str(tmp / "home"),
        "server": {"admin_key": ADMIN_KEY, "port": port, "log_level": "warning"},
        "routes": [
            {
                "name": "local",
                "provider": "openai_compat",
                "base_url": upstream,
                "model": "m",
                "location": "on_prem",
            }
        ],
        **extra,
    }
    path = tmp / "hybridgate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _start(config: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [*HG, "serve", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(
        "gateway did not start: " + (proc.stderr.read() if proc.stderr else b"").decode()
    )


def _create_key(config: Path) -> str:
    out = subprocess.run(
        [*HG, "keys", "create", "--team", "load", "--config", str(config)],
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def test_sigkill_under_load_then_restart(tmp_path: Path) -> None:
    port = _free_port()
    with OpenAIUpstream() as upstream:
        config = _write_config(tmp_path, upstream.base_url, port, ledger={"commit_interval_ms": 1})
        key = _create_key(config)
        proc = _start(config, port)
        completed: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"authorization": f"Bearer {key}"},
                timeout=5,
            ) as c:
                for i in range(2000):  # bounded
                    if stop.is_set():
                        return
                    try:
                        r = c.post(
                            "/v1/chat/completions",
                            json={
                                "model": "local",
                                "messages": [{"role": "user", "content": f"n{i}"}],
                            },
                        )
                        body = r.json()  # the whole body arrived
                    except (httpx.HTTPError, ValueError):
                        return
                    if r.status_code == 200 and body.get("choices"):
                        with lock:
                            completed.append(r.headers["x-hybridgate-receipt"])

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        if proc.stderr is not None:
            proc.stderr.close()
        stop.set()
        for t in threads:
            t.join(10)
        assert len(completed) > 20, "the load did not run"

        verify = subprocess.run(
            [*HG, "log", "verify", "--config", str(config)], capture_output=True, text=True
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr

        proc2 = _start(config, port)
        try:
            admin = {"authorization": f"Bearer {ADMIN_KEY}"}
            missing = [
                rid
                for rid in completed
                if httpx.get(
                    f"http://127.0.0.1:{port}/v1/receipts/{rid}", headers=admin
                ).status_code
                != 200
            ]
            assert not missing, f"{len(missing)} answered requests have no receipt"
            # The restarted gateway keeps appending to the same log.
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/chat/completions",
                headers={"authorization": f"Bearer {key}"},
                json={"model": "local", "messages": [{"role": "user", "content": "after"}]},
            )
            assert r.status_code == 200
        finally:
            proc2.terminate()
            proc2.wait(15)
            if proc2.stderr is not None:
                proc2.stderr.close()
        verify = subprocess.run(
            [*HG, "log", "verify", "--config", str(config)], capture_output=True, text=True
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr


def _reloads(port: int, result: str) -> float:
    """The gateway's own count of policy reloads with ``result`` (from /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    for line in text.splitlines():
        if line.startswith(f'hybridgate_policy_reloads_total{{result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_sighup_reloads_policy_and_refuses_invalid(tmp_path: Path) -> None:
    port = _free_port()
    with OpenAIUpstream() as upstream:
        config = _write_config(tmp_path, upstream.base_url, port)
        proc = _start(config, port)
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        try:
            h0 = httpx.get(f"http://127.0.0.1:{port}/v1/admin/policy", headers=admin).json()[
                "policy_hash"
            ]
            cfg = yaml.safe_load(config.read_text())
            cfg["policy"] = {"classes": {"contact": "allow"}}
            config.write_text(yaml.safe_dump(cfg))
            proc.send_signal(signal.SIGHUP)
            h1 = h0
            for _ in range(50):
                h1 = httpx.get(f"http://127.0.0.1:{port}/v1/admin/policy", headers=admin).json()[
                    "policy_hash"
                ]
                if h1 != h0:
                    break
                time.sleep(0.1)
            assert h1 != h0
            cfg["policy"] = {"classes": {"contact": "shout"}}
            config.write_text(yaml.safe_dump(cfg))
            proc.send_signal(signal.SIGHUP)
            # Wait until the gateway has *processed* the refused reload, then check.
            refused = 0.0
            for _ in range(100):
                refused = _reloads(port, "refused")
                if refused >= 1:
                    break
                time.sleep(0.1)
            assert refused == 1, "the invalid reload was never processed"
            assert _reloads(port, "ok") == 1
            h2 = httpx.get(f"http://127.0.0.1:{port}/v1/admin/policy", headers=admin).json()[
                "policy_hash"
            ]
            assert h2 == h1  # the last good policy stays active
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=15)
        assert b"policy" in err.lower()  # refused loudly in the log
