"""policy_hash() stability and PolicyHolder's keep-the-last-good reloads."""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any

import pytest
import rfc8785

from hybridgate.errors import ConfigError
from hybridgate.policy import PolicyHolder, policy_hash
from hybridgate.policy.model import Action, PolicyConfig

RAW: dict[str, Any] = {
    "classes": {"contact": "redact", "secret": "block", "health": "on_prem_only"},
    "unknown": "on_prem_only",
    "forbid": {"licences": ["llama3"], "providers": []},
    "actions": [{"name": "r", "action": "PAY_*", "effect": "deny"}],
}


def _reordered(d: Any) -> Any:
    if isinstance(d, dict):
        return {k: _reordered(d[k]) for k in reversed(list(d))}
    if isinstance(d, list):
        return [_reordered(x) for x in d]
    return d


def test_hash_is_sha256_of_canonical_json() -> None:
    p = PolicyConfig.model_validate(RAW)
    expected = hashlib.sha256(rfc8785.dumps(p.model_dump(mode="json"))).hexdigest()
    assert policy_hash(p) == expected
    assert len(expected) == 64 and int(expected, 16) >= 0


def test_hash_independent_of_key_order() -> None:
    a = PolicyConfig.model_validate(RAW)
    b = PolicyConfig.model_validate(_reordered(RAW))
    assert list(a.classes) != list(b.classes)  # the input order really differs
    assert policy_hash(a) == policy_hash(b)
    assert policy_hash(a) == policy_hash(PolicyConfig.model_validate(RAW))


def test_hash_changes_when_a_rule_changes() -> None:
    base = policy_hash(PolicyConfig.model_validate(RAW))
    changed = {**RAW, "classes": {**RAW["classes"], "contact": "allow"}}
    assert policy_hash(PolicyConfig.model_validate(changed)) != base
    rule = {**RAW, "actions": [{"name": "r", "action": "PAY_*", "effect": "allow"}]}
    assert policy_hash(PolicyConfig.model_validate(rule)) != base
    assert policy_hash(PolicyConfig()) != base


def test_holder_current_and_successful_reload(caplog: pytest.LogCaptureFixture) -> None:
    first = PolicyConfig()
    holder = PolicyHolder(first)
    assert holder.current == (first, policy_hash(first))
    new = PolicyConfig.model_validate({"classes": {"contact": "allow"}})
    res = holder.reload(lambda: new)
    assert res.ok and res.changed and res.error is None
    assert holder.current[1] == policy_hash(new) == res.policy_hash
    assert holder.current[0] == new
    again = holder.reload(lambda: new)
    assert again.ok and not again.changed


@pytest.mark.parametrize(
    "loader_error",
    [
        ConfigError("policy.yaml: classes.contact: bad action"),
        OSError("no such file"),
        RuntimeError("loader bug"),
    ],
)
def test_failed_reload_keeps_last_good_and_logs_error(
    loader_error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    good = PolicyConfig(unknown=Action.BLOCK)
    holder = PolicyHolder(good)
    before = holder.current

    def load() -> PolicyConfig:
        raise loader_error

    with caplog.at_level(logging.ERROR, logger="hybridgate.policy"):
        res = holder.reload(load)
    assert not res.ok and not res.changed
    assert res.error is not None and type(loader_error).__name__ in res.error
    assert res.policy_hash == before[1]
    assert holder.current is before
    assert any(r.levelno == logging.ERROR and "REFUSED" in r.message for r in caplog.records)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reload_revalidates_unvalidated_objects() -> None:
    holder = PolicyHolder(PolicyConfig())
    before = holder.current
    bogus = PolicyConfig.model_construct(unknown="maybe")  # type: ignore[arg-type]
    res = holder.reload(lambda: bogus)
    assert not res.ok and holder.current is before
    res = holder.reload(lambda: {"unknown": "allow"})  # type: ignore[arg-type,return-value]
    assert not res.ok and holder.current is before


def test_reload_with_invalid_yaml_policy(tmp_path: Any) -> None:
    from hybridgate.config import load_policy_file

    f = tmp_path / "policy.yaml"
    f.write_text("classes:\n  contact: allow\n", encoding="utf-8")
    holder = PolicyHolder(PolicyConfig())
    assert holder.reload(lambda: load_policy_file(f)).ok
    good = holder.current
    f.write_text("classes:\n  contact: alow\n", encoding="utf-8")  # typo
    res = holder.reload(lambda: load_policy_file(f))
    assert not res.ok and holder.current is good and "classes.contact" in (res.error or "")


def test_concurrent_readers_always_see_a_consistent_pair() -> None:
    a, b = PolicyConfig(), PolicyConfig(unknown=Action.BLOCK)
    ha, hb = policy_hash(a), policy_hash(b)
    holder = PolicyHolder(a)
    stop = threading.Event()
    bad: list[tuple[PolicyConfig, str]] = []

    def read() -> None:
        while not stop.is_set():
            p, h = holder.current
            if (p.unknown is Action.BLOCK) != (h == hb):
                bad.append((p, h))

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for i in range(200):
        holder.reload(lambda i=i: b if i % 2 else a)  # type: ignore[misc]
    stop.set()
    for t in threads:
        t.join(timeout=5)
    assert not bad and holder.current[1] in (ha, hb)
