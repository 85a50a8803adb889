"""The agent action gate: signed, single-use receipts for high-stakes actions.

See ``docs/actions.md`` for the flow. Executors written in Python check a
receipt offline with :func:`verify_action` and the gateway's public key.
"""

from hybridgate.actions.model import ActionRequest, approval_payload, params_hash
from hybridgate.actions.service import ActionService, VerdictResult
from hybridgate.actions.verify import (
    ActionCheck,
    check_action_receipt,
    inspect_action_receipt,
    verify_action,
)

__all__ = [
    "ActionCheck",
    "ActionRequest",
    "ActionService",
    "VerdictResult",
    "approval_payload",
    "check_action_receipt",
    "inspect_action_receipt",
    "params_hash",
    "verify_action",
]
