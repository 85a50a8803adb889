"""One exception tree for the whole gateway.

Every failure that can reach a client is a :class:`GatewayError` with an HTTP
status and a stable machine-readable ``code``. The API layer translates these
into each wire format's own error shape (OpenAI ``{"error": {...}}``,
Anthropic ``{"type": "error", "error": {...}}``) at the boundary, so the core
never knows which API a request came in on.

Messages must never contain secrets, prompt text or sensitive values: they are
returned to clients and written to logs.
"""

from __future__ import annotations

import json
from typing import Any, Literal

#: The wire formats errors are rendered in; each API module names its own.
ErrorFormat = Literal["openai", "anthropic"]

#: Anthropic error ``type`` by HTTP status: the one table for the gateway's own
#: answers, the streams it translates and the loopback Anthropic stand-in.
ANTHROPIC_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout_error",
    409: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(status: int) -> str:
    """The Anthropic ``error.type`` for an HTTP status (``api_error`` when none fits)."""
    return ANTHROPIC_ERROR_TYPES.get(status, "api_error")


class GatewayError(Exception):
    """Base of every error the gateway answers with."""

    status: int = 500
    code: str = "internal_error"
    #: OpenAI-style error ``type``; the Anthropic mapping derives from ``status``.
    openai_type: str = "server_error"

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.param = param
        #: ``x-hybridgate-*`` headers the exchange attaches before the error is rendered.
        self.headers: dict[str, str] = {}
        #: The wire format the exchange committed this error in (None: from the path).
        self.error_format: ErrorFormat | None = None

    def body(self, fmt: ErrorFormat) -> dict[str, Any]:
        """This error as the JSON body of ``fmt``: the only place error shapes are built."""
        if fmt == "anthropic":
            return {
                "type": "error",
                "error": {"type": anthropic_error_type(self.status), "message": self.message},
            }
        return {
            "error": {
                "message": self.message,
                "type": self.openai_type,
                "param": self.param,
                "code": self.code,
            }
        }

    def render(self, fmt: ErrorFormat) -> bytes:
        """:meth:`body` as the exact bytes sent (and committed to in the receipt)."""
        return json.dumps(self.body(fmt), ensure_ascii=False, separators=(",", ":")).encode()


class InvalidRequest(GatewayError):
    status = 400
    code = "invalid_request"
    openai_type = "invalid_request_error"


class AuthenticationError(GatewayError):
    status = 401
    code = "invalid_api_key"
    openai_type = "authentication_error"


class PermissionDenied(GatewayError):
    status = 403
    code = "permission_denied"
    openai_type = "permission_error"


class PolicyBlocked(PermissionDenied):
    """The policy forbids sending this request anywhere (e.g. it holds a secret)."""

    code = "policy_blocked"


class NotFound(GatewayError):
    status = 404
    code = "not_found"
    openai_type = "not_found_error"


class MethodNotAllowed(GatewayError):
    status = 405
    code = "method_not_allowed"
    openai_type = "invalid_request_error"


class RequestTimeout(GatewayError):
    status = 408
    code = "request_timeout"
    openai_type = "timeout_error"


class Conflict(GatewayError):
    status = 409
    code = "conflict"
    openai_type = "conflict_error"


class PayloadTooLarge(GatewayError):
    status = 413
    code = "payload_too_large"
    openai_type = "invalid_request_error"


class RateLimited(GatewayError):
    status = 429
    code = "rate_limited"
    openai_type = "rate_limit_error"


class BudgetExceeded(RateLimited):
    code = "budget_exceeded"
    openai_type = "insufficient_quota"


class UpstreamError(GatewayError):
    """An upstream answered with an error or broke the protocol.

    ``retryable`` tells the fallback loop whether another permitted route may be
    tried (timeouts, 5xx, 429 and connection errors are; 4xx are not).
    """

    status = 502
    code = "upstream_error"
    openai_type = "api_error"

    def __init__(
        self,
        message: str,
        *,
        upstream_status: int | None = None,
        retryable: bool = True,
        code: str | None = None,
    ):
        super().__init__(message, code=code)
        self.upstream_status = upstream_status
        self.retryable = retryable


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class NoRouteAvailable(GatewayError):
    """No permitted route could serve the request; never widened to another route."""

    status = 503
    code = "no_route_available"
    openai_type = "service_unavailable"


class ServiceUnavailable(GatewayError):
    """A component the gateway must not run without (store, ledger, scanner) failed."""

    status = 503
    code = "service_unavailable"
    openai_type = "service_unavailable"


class ClientDisconnected(GatewayError):
    """The client hung up (e.g. mid-body). Nobody reads the answer; the receipt says so."""

    status = 499
    code = "client_disconnected"
    openai_type = "invalid_request_error"


class ConfigError(Exception):
    """Invalid configuration; the message names the file, the key path and the problem."""
