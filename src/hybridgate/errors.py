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


class ConfigError(Exception):
    """Invalid configuration; the message names the file, the key path and the problem."""
