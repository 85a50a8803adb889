"""Checking an action receipt: the rules every executor applies, gateway or not.

The same pure function backs the gateway's ``/v1/gate`` and
:func:`verify_action`, which executors written in Python call offline with
nothing but the gateway's public key. It never raises for a bad receipt: a
receipt is untrusted input and every way it can be wrong is an answer.

Verdicts are ordered by what the holder of the receipt can have done wrong:

* ``HALTED`` — there is no real authorization to look at (missing, unsigned,
  merely *claiming* validity, or signed by a key we do not know). The action
  waits; nothing runs.
* ``DENY`` — a signed receipt that does not authorize *this* action: any
  altered byte, another action or agent, other parameters, a refusal receipt,
  a stale policy, or an expired one.
* ``ALLOW`` — every check passed. Single use is enforced by whoever keeps
  the nonce ledger (the gateway's store); offline callers may pass
  ``used_nonces`` to do the same.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hybridgate.actions.model import (
    KIND_ACTION,
    OUTCOME_ALLOWED,
    Verdict,
    params_hash,
)
from hybridgate.errors import InvalidRequest
from hybridgate.ledger import VerifierKey, canonical_json, verify_bundle, verify_receipt_signature

#: Flags that mark a receipt as a stand-in rather than an authorization.
_CLAIM_FLAGS = ("simulated", "simulation", "dry_run", "mock")


@dataclass(frozen=True, slots=True)
class ActionCheck:
    """The answer for one receipt. ``ok`` is True exactly when ``verdict`` is ``ALLOW``."""

    ok: bool
    verdict: Verdict
    reason: str
    receipt_id: str | None = None
    nonce: str | None = None

    @classmethod
    def allow(cls, receipt_id: str, nonce: str) -> ActionCheck:
        return cls(True, "ALLOW", "receipt authorizes this action", receipt_id, nonce)

    @classmethod
    def deny(cls, reason: str, receipt_id: str | None = None) -> ActionCheck:
        return cls(False, "DENY", reason, receipt_id)

    @classmethod
    def halted(cls, reason: str) -> ActionCheck:
        return cls(False, "HALTED", reason)


def _claims_only(signed: Mapping[str, Any], body: object) -> bool:
    for holder in (signed, body):
        if isinstance(holder, Mapping) and any(holder.get(f) for f in _CLAIM_FLAGS):
            return True
    return False


def _find_key(keys: Sequence[VerifierKey], key_id: str) -> VerifierKey | None:
    for k in keys:
        if k.key_id == key_id:
            return k
    return None


def check_action_receipt(
    signed: object,
    *,
    action: str,
    params_hash: str,
    agent_id: str | None,
    keys: Sequence[VerifierKey],
    now_ns: int,
    policy_hash: str | None = None,
) -> ActionCheck:
    """Every check that needs only the receipt, the intended action and the public keys."""
    if not isinstance(signed, Mapping):
        return ActionCheck.halted("no action receipt presented")
    body = signed.get("receipt")
    if _claims_only(signed, body):
        return ActionCheck.halted("receipt only claims to be valid (simulated); it is not signed")
    sig = signed.get("signature")
    if not isinstance(body, Mapping) or not isinstance(sig, Mapping):
        return ActionCheck.halted("receipt is not signed")
    key_id, sig_b64 = sig.get("key_id"), sig.get("sig")
    if sig.get("alg") != "ed25519" or not isinstance(key_id, str) or not isinstance(sig_b64, str):
        return ActionCheck.halted("receipt is not signed with ed25519")
    key = _find_key(keys, key_id)
    if key is None:
        return ActionCheck.halted("receipt is signed by an unknown key")
    rid = body.get("receipt_id")
    receipt_id = rid if isinstance(rid, str) else None
    try:
        problem = verify_receipt_signature({"receipt": dict(body), "signature": dict(sig)}, [key])
    except (ValueError, TypeError) as exc:
        problem = f"receipt cannot be checked: {exc}"
    if problem is not None:
        return ActionCheck.deny(f"signature does not verify: {problem}", receipt_id)
    if receipt_id is None:
        return ActionCheck.deny("receipt has no receipt_id")
    return _check_body(body, receipt_id, action, params_hash, agent_id, now_ns, policy_hash)


def _check_body(
    body: Mapping[str, Any],
    receipt_id: str,
    action: str,
    phash: str,
    agent_id: str | None,
    now_ns: int,
    policy_hash: str | None,
) -> ActionCheck:
    if body.get("kind") != KIND_ACTION:
        return ActionCheck.deny("not an action receipt", receipt_id)
    if body.get("outcome") != OUTCOME_ALLOWED:
        return ActionCheck.deny("receipt records a refusal, not an authorization", receipt_id)
    if body.get("action") != action:
        return ActionCheck.deny("receipt is for a different action", receipt_id)
    if body.get("params_hash") != phash:
        return ActionCheck.deny("parameters differ from the ones authorized", receipt_id)
    if agent_id is not None and body.get("agent_id") != agent_id:
        return ActionCheck.deny("receipt was issued to a different agent", receipt_id)
    if policy_hash is not None and body.get("policy_hash") != policy_hash:
        return ActionCheck.deny(
            "receipt was issued under a policy that is no longer active", receipt_id
        )
    expires = _expiry_ns(body.get("expires_at_ns"))
    if expires is None:
        return ActionCheck.deny("receipt has no valid expiry", receipt_id)
    if now_ns >= expires:
        return ActionCheck.deny("receipt has expired", receipt_id)
    nonce = body.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        return ActionCheck.deny("receipt has no nonce", receipt_id)
    return ActionCheck.allow(receipt_id, nonce)


def _expiry_ns(value: object) -> int | None:
    """Expiry as written by the gateway: a decimal string (ns exceed RFC 8785's int range)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def _as_keys(public_key: VerifierKey | str | Sequence[VerifierKey | str]) -> list[VerifierKey]:
    items: Sequence[VerifierKey | str] = (
        [public_key] if isinstance(public_key, VerifierKey | str) else public_key
    )
    return [k if isinstance(k, VerifierKey) else VerifierKey.parse(k) for k in items]


def _same(a: object, b: object) -> bool:
    try:
        return canonical_json(a) == canonical_json(b)
    except (ValueError, TypeError):
        return False


def verify_action(
    receipt: object,
    action: str,
    params: dict[str, Any],
    public_key: VerifierKey | str | Sequence[VerifierKey | str],
    *,
    agent_id: str | None = None,
    bundle: Mapping[str, Any] | None = None,
    policy_hash: str | None = None,
    used_nonces: Collection[str] = (),
    clock: Callable[[], float] = time.time,
) -> ActionCheck:
    """Check offline that ``receipt`` authorizes ``action`` with exactly ``params``.

    ``public_key`` is the gateway's verifier key (a :class:`VerifierKey` or its
    string form), or several during a key rotation. ``receipt`` may be the
    signed receipt or a proof bundle; with a bundle (here or as ``bundle``) its
    inclusion proof and signed checkpoint must verify too. A malformed public
    key is the caller's error and raises ``ValueError``; a bad receipt never raises.
    """
    keys = _as_keys(public_key)
    try:
        phash = params_hash(params)
    except InvalidRequest as exc:
        return ActionCheck.deny(exc.message)
    return _verify(receipt, action, phash, keys, agent_id, bundle, policy_hash, used_nonces, clock)


def inspect_action_receipt(
    receipt: object,
    public_key: VerifierKey | str | Sequence[VerifierKey | str],
    *,
    bundle: Mapping[str, Any] | None = None,
    clock: Callable[[], float] = time.time,
) -> ActionCheck:
    """Is this action receipt genuine and still usable, whatever action it names?

    For tools that hold a receipt but not the action it is meant for (an
    auditor, ``hybridgate receipt verify``): every check of
    :func:`verify_action` except the binding to a caller's action and
    parameters, which are taken from the receipt itself.
    """
    keys = _as_keys(public_key)
    body = receipt.get("receipt") if isinstance(receipt, Mapping) else None
    action = body.get("action") if isinstance(body, Mapping) else None
    phash = body.get("params_hash") if isinstance(body, Mapping) else None
    return _verify(
        receipt,
        action if isinstance(action, str) else "",
        phash if isinstance(phash, str) else "",
        keys,
        None,
        bundle,
        None,
        (),
        clock,
    )


def _verify(
    receipt: object,
    action: str,
    phash: str,
    keys: list[VerifierKey],
    agent_id: str | None,
    bundle: Mapping[str, Any] | None,
    policy_hash: str | None,
    used_nonces: Collection[str],
    clock: Callable[[], float],
) -> ActionCheck:
    if bundle is None and isinstance(receipt, Mapping) and _looks_like_bundle(receipt):
        bundle = receipt
    check = check_action_receipt(
        receipt,
        action=action,
        params_hash=phash,
        agent_id=agent_id,
        keys=keys,
        now_ns=int(clock() * 1_000_000_000),
        policy_hash=policy_hash,
    )
    if not check.ok:
        return check
    if check.nonce in used_nonces:
        return ActionCheck.deny("receipt was already used", check.receipt_id)
    if bundle is not None:
        assert isinstance(receipt, Mapping)  # an ALLOW check implies a signed mapping
        if not (
            _same(bundle.get("receipt"), receipt.get("receipt"))
            and _same(bundle.get("signature"), receipt.get("signature"))
        ):
            return ActionCheck.deny("bundle is for a different receipt", check.receipt_id)
        try:
            problem = verify_bundle(dict(bundle), keys)
        except (ValueError, TypeError) as exc:
            problem = str(exc)
        if problem is not None:
            return ActionCheck.deny(f"inclusion proof does not verify: {problem}", check.receipt_id)
    return check


def _looks_like_bundle(obj: Mapping[str, Any]) -> bool:
    return "inclusion_proof" in obj or "checkpoint" in obj
