"""Governance documents: parsing, hashing, thresholds and TUF-style rotation."""

from __future__ import annotations

import base64

import pytest

from governance.gov_fixtures import doc, keys, signed
from hybridgate.governance.model import (
    GovernanceDoc,
    GovernanceError,
    Signature,
    check_rotation,
    governance_payload,
    proposal_payload,
    valid_signers,
)


def test_document_rejects_bad_shapes() -> None:
    k = keys("alice", "bob")
    good = [k["alice"].verifier().to_string(), k["bob"].verifier().to_string()]
    with pytest.raises(GovernanceError, match="threshold"):
        GovernanceDoc.parse({"version": 1, "threshold": 3, "approvers": good})
    with pytest.raises(GovernanceError, match="verifier key"):
        GovernanceDoc.parse({"version": 1, "threshold": 1, "approvers": ["alice+1234+xyz"]})
    with pytest.raises(GovernanceError, match="unique"):
        GovernanceDoc.parse({"version": 1, "threshold": 1, "approvers": [good[0], good[0]]})
    with pytest.raises(GovernanceError, match="previous"):
        GovernanceDoc.parse({"version": 2, "threshold": 1, "approvers": good})
    with pytest.raises(GovernanceError, match=r"[Ee]xtra"):
        GovernanceDoc.parse({"version": 1, "threshold": 1, "approvers": good, "admins": []})
    with pytest.raises(GovernanceError):
        GovernanceDoc.parse("not a mapping")


def test_hash_covers_everything_but_signatures() -> None:
    k = keys("alice", "bob")
    d = doc(list(k.values()), 1)
    assert signed(d, k["alice"]).hash() == d.hash()
    assert doc(list(k.values()), 2).hash() != d.hash()


def test_threshold_counts_distinct_valid_signers_only() -> None:
    k = keys("alice", "bob", "carol")
    d = doc(list(k.values()), 2)
    payload = proposal_payload(
        proposal_id="prop_" + "0" * 24, policy_hash="a" * 64, base_policy_hash="b" * 64
    )

    def sig(name: str, key_name: str | None = None, data: bytes = payload) -> Signature:
        signer = k[key_name or name]
        return Signature(
            approver=name, key_id=k[name].key_id, sig=base64.b64encode(signer.sign(data)).decode()
        )

    assert valid_signers(d.keys(), [sig("alice"), sig("alice")], payload) == ["alice"]
    assert valid_signers(d.keys(), [sig("alice", "bob")], payload) == []  # bob's key, alice's name
    other = proposal_payload(
        proposal_id="prop_" + "1" * 24, policy_hash="a" * 64, base_policy_hash="b" * 64
    )
    assert valid_signers(d.keys(), [sig("alice", data=other)], payload) == []
    outsider = keys("mallory")["mallory"]
    forged = Signature(
        approver="mallory",
        key_id=outsider.key_id,
        sig=base64.b64encode(outsider.sign(payload)).decode(),
    )
    assert valid_signers(d.keys(), [forged, sig("bob")], payload) == ["bob"]
    bad = Signature(approver="carol", key_id=k["carol"].key_id, sig="!!notbase64!!")
    assert valid_signers(d.keys(), [bad], payload) == []


def test_rotation_needs_m_of_current_and_new_threshold_of_new() -> None:
    k = keys("alice", "bob", "carol", "dave")
    v1 = doc([k["alice"], k["bob"], k["carol"]], 2)
    v2 = doc([k["bob"], k["carol"], k["dave"]], 2, version=2, previous=v1.hash())
    assert check_rotation(v1, signed(v2, k["alice"], k["bob"], k["dave"])) == ["alice", "bob"]
    # one current approver is not enough, however many new ones sign
    with pytest.raises(GovernanceError, match="current approvers"):
        check_rotation(v1, signed(v2, k["alice"], k["dave"]))
    # the new approvers must accept too (alice alone of the new set? she is not in it)
    with pytest.raises(GovernanceError, match="its own approvers"):
        check_rotation(v1, signed(v2, k["alice"], k["bob"]))
    # a signature over another document does not count
    other = doc([k["dave"]], 1, version=2, previous=v1.hash())
    stolen = [
        Signature(
            approver=n,
            key_id=k[n].key_id,
            sig=base64.b64encode(k[n].sign(governance_payload(other.hash()))).decode(),
        )
        for n in ("alice", "bob", "dave")
    ]
    with pytest.raises(GovernanceError):
        check_rotation(v1, v2.model_copy(update={"signatures": stolen}))


def test_rotation_refuses_skips_rollbacks_and_forks() -> None:
    k = keys("alice", "bob")
    v1 = doc(list(k.values()), 1)
    skip = signed(doc(list(k.values()), 1, version=3, previous=v1.hash()), k["alice"])
    with pytest.raises(GovernanceError, match="does not follow"):
        check_rotation(v1, skip)
    fork = signed(doc(list(k.values()), 2, version=2, previous="0" * 64), k["alice"], k["bob"])
    with pytest.raises(GovernanceError, match="previous"):
        check_rotation(v1, fork)
    v2 = signed(doc(list(k.values()), 2, version=2, previous=v1.hash()), k["alice"], k["bob"])
    check_rotation(v1, v2)
    with pytest.raises(GovernanceError, match="does not follow"):
        check_rotation(v2, signed(v1, k["alice"], k["bob"]))
