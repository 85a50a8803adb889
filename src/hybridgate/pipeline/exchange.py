"""The facts one exchange accumulates, and what the pre-send stages hand to sending.

:class:`Exchange` is written by the pipeline's stages only; the API layer
feeds the response commitment and marks when a stream starts. It is frozen
into an :class:`~hybridgate.outcome.Outcome` when the exchange closes.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hybridgate.accounting import Reservation
from hybridgate.adapters import Adapter
from hybridgate.config import RouteConfig, VirtualModel
from hybridgate.errors import ErrorFormat, GatewayError
from hybridgate.keys import KeyInfo
from hybridgate.outcome import Outcome, response_headers
from hybridgate.policy import Decision, Restorer
from hybridgate.providers.base import Usage
from hybridgate.routing import Plan
from hybridgate.scan.findings import RequestScan


@dataclass(eq=False)
class Exchange:
    """One request's facts as the pipeline's stages learn them.

    Only the pipeline's stages write these fields; the API layer feeds the
    response commitment (:meth:`sent`) and says when a stream has started
    (:meth:`mark_streaming`). When the exchange closes, its facts are frozen
    into :attr:`outcome`.
    """

    api: str
    key: KeyInfo
    request_id: str
    receipt_id: str
    errors: ErrorFormat
    #: HMAC over every byte sent to the client, fed as it goes (streams are not buffered).
    response_mac: hmac.HMAC
    raw_body: bytes = b""
    started: float = field(default_factory=time.perf_counter)
    virtual_model: str | None = None
    scan: RequestScan | None = None
    decision: Decision | None = None
    plan: Plan | None = None
    route: RouteConfig | None = None
    usage: Usage | None = None
    masked: int = 0
    reservation: Reservation | None = None
    attempts: list[str] = field(default_factory=list)
    streaming: bool = False
    #: the ``x-hybridgate-task`` header, and the task the exchange belongs to (distill)
    task_header: str | None = None
    task: str | None = None
    #: what went upstream (masked) and the answer text before restore: what capture may keep
    sent_body: dict[str, Any] | None = None
    answer_text: str | None = None
    #: The task adapter a ``<base>:<adapter>`` model name asked for.
    adapter: Adapter | None = None
    #: the Responses conversation this exchange continues or starts (named in its receipt)
    conversation_id: str | None = None
    #: The frozen outcome, set once, when the exchange closes.
    result: Outcome | None = None
    #: How a refusal is committed when the client is not sent the API's JSON error
    #: (a tool call answers with the message text); None: ``err.render(errors)``.
    error_bytes: Callable[[GatewayError], bytes] | None = None

    @property
    def outcome(self) -> str:
        """How the exchange ended, an :class:`OutcomeKind` value ("" while it is open)."""
        return self.result.kind.value if self.result is not None else ""

    @property
    def status(self) -> int:
        return self.result.status if self.result is not None else 200

    @property
    def cost(self) -> Decimal:
        return self.result.cost if self.result is not None else Decimal(0)

    @property
    def latency_ms(self) -> float:
        if self.result is not None:
            return self.result.latency_ms
        return (time.perf_counter() - self.started) * 1000.0

    def sent(self, data: bytes) -> None:
        """Account bytes sent to the client in the response commitment."""
        self.response_mac.update(data)

    def mark_streaming(self) -> None:
        """The response has started: a failure from now on is a failed stream."""
        self.streaming = True

    def headers(self) -> dict[str, str]:
        """The ``x-hybridgate-*`` headers as of now (a stream's, sent before it ends)."""
        return response_headers(self)


@dataclass
class Prepared:
    """What the pre-send stages decided for one request."""

    body: dict[str, Any]  # what goes upstream (masked when the decision says so)
    vm: VirtualModel
    plan: Plan
    restorer: Restorer | None
    adapter: Adapter | None = None
