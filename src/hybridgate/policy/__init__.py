"""Policy: where a request's data may go, what is masked, and which agent actions pass.

Everything here is pure except :class:`PolicyHolder`, which only swaps an
immutable ``(policy, hash)`` pair under a lock.
"""

from hybridgate.policy.actions import ActionVerdict, evaluate_action
from hybridgate.policy.evaluate import (
    Decision,
    MaskTarget,
    Principal,
    RouteFacts,
    effective_policy,
    evaluate,
)
from hybridgate.policy.holder import PolicyHolder, ReloadResult, policy_hash
from hybridgate.policy.redact import RedactionError, mask_request
from hybridgate.policy.restore import Restorer, StreamRestorer

__all__ = [
    "ActionVerdict",
    "Decision",
    "MaskTarget",
    "PolicyHolder",
    "Principal",
    "RedactionError",
    "ReloadResult",
    "Restorer",
    "RouteFacts",
    "StreamRestorer",
    "effective_policy",
    "evaluate",
    "evaluate_action",
    "mask_request",
    "policy_hash",
]
