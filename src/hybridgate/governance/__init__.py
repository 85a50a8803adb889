"""Shared governance of the policy: M-of-N signed proposals, rotation, history.

Who may change where data goes is itself governed. Approvers are people with
their own Ed25519 keys (the ``hybridgate approvals keygen`` format), listed in
a governance document that only M of its current approvers can replace (a
TUF-style threshold-signed root). A policy takes effect only with M valid
signatures, or with one when a mechanical check shows it only tightens the
policy. Every applied policy and governance document is a receipt in the log.
"""

from hybridgate.governance.model import (
    GovernanceDoc,
    GovernanceError,
    check_rotation,
    governance_payload,
    proposal_payload,
    valid_signers,
)
from hybridgate.governance.tighten import loosenings

__all__ = [
    "GovernanceDoc",
    "GovernanceError",
    "check_rotation",
    "governance_payload",
    "loosenings",
    "proposal_payload",
    "valid_signers",
]
