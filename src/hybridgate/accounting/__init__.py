"""What requests cost, what they may spend, and what was spent and saved.

``pricing`` is pure (Decimal, exact); ``budgets`` reserves before a request is
sent and settles after; ``usage`` logs one row per request and reports on them.
"""

from hybridgate.accounting.budgets import BudgetManager, Reservation
from hybridgate.accounting.pricing import cost_usd, format_usd, from_nano, to_nano
from hybridgate.accounting.usage import UsageLog, UsageRecord, baseline_for

__all__ = [
    "BudgetManager",
    "Reservation",
    "UsageLog",
    "UsageRecord",
    "baseline_for",
    "cost_usd",
    "format_usd",
    "from_nano",
    "to_nano",
]
