"""The live policy: a hash for receipts and a thread-safe swap for reloads.

A reload validates the new policy completely (schema, then hashing) before
it replaces the current one, so a typo in a policy file can never leave the
gateway without a policy or with half of one: the last good policy stays.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import rfc8785

from hybridgate.policy.model import PolicyConfig

log = logging.getLogger("hybridgate.policy")

#: Says why a validated policy may not become active (None: it may). Governance installs one
#: so that only the approved policy loads, whatever a reload is handed.
PolicyGate = Callable[[PolicyConfig, str], str | None]


class PolicyNotApproved(Exception):
    """A reload was refused because governance has not approved that policy."""


def policy_hash(policy: PolicyConfig) -> str:
    """SHA-256 (hex) of the RFC 8785 canonical JSON of the policy.

    Canonical JSON makes the hash independent of key order and formatting, so
    two gateways running the same rules report the same hash in receipts.
    """
    canonical = rfc8785.dumps(policy.model_dump(mode="json"))
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class ReloadResult:
    ok: bool
    policy_hash: str  # the hash of the policy active after the attempt
    changed: bool = False
    error: str | None = None


class PolicyHolder:
    """Holds ``(policy, hash)`` as one immutable pair, swapped atomically."""

    def __init__(self, policy: PolicyConfig) -> None:
        self._lock = threading.Lock()
        self._current: tuple[PolicyConfig, str] = (policy, policy_hash(policy))
        self._gate: PolicyGate | None = None

    def set_gate(self, gate: PolicyGate | None) -> None:
        """Install (or remove) the check every later reload must pass."""
        self._gate = gate

    @property
    def current(self) -> tuple[PolicyConfig, str]:
        return self._current

    def reload(self, load: Callable[[], PolicyConfig]) -> ReloadResult:
        """Load, validate and hash a new policy; on any failure keep the last good one."""
        try:
            loaded = load()
            if not isinstance(loaded, PolicyConfig):
                raise TypeError(f"policy loader returned {type(loaded).__name__}")
            # Re-validate from plain data: a loader may have built the object with
            # model_construct() or mutated nested lists, which skip validation.
            fresh = PolicyConfig.model_validate(loaded.model_dump(mode="json"))
            new_hash = policy_hash(fresh)
            refusal = None if self._gate is None else self._gate(fresh, new_hash)
            if refusal is not None:
                raise PolicyNotApproved(refusal)
        except Exception as exc:  # any failure (ConfigError, ValidationError, a loader bug)
            return self._refuse(exc)
        with self._lock:
            _, old_hash = self._current
            self._current = (fresh, new_hash)
        if new_hash != old_hash:
            log.warning("policy reloaded: %s -> %s", old_hash[:16], new_hash[:16])
        else:
            log.info("policy reloaded, unchanged (%s)", new_hash[:16])
        return ReloadResult(ok=True, policy_hash=new_hash, changed=new_hash != old_hash)

    def _refuse(self, exc: BaseException) -> ReloadResult:
        _, active = self._current
        message = f"{type(exc).__name__}: {exc}"
        log.error(
            "POLICY RELOAD REFUSED - the last good policy %s stays active. %s",
            active[:16],
            message,
        )
        return ReloadResult(ok=False, policy_hash=active, changed=False, error=message)
