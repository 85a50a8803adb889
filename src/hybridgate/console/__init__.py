"""The web console at ``/console``: traffic, spend, budgets, route health, receipts
verified in the browser, held actions and policy proposals.

Server-rendered HTML with one small script and one stylesheet shipped in the
package (no CDN, no build step). Sign-in with the admin key or a team key
(read-only) opens an HttpOnly, SameSite=Strict session; every state-changing
request carries a CSRF token; a strict Content-Security-Policy forbids inline
script. Approvals and proposal signatures are made in the page with the
approver's own Ed25519 key (WebCrypto) and verified by the gateway exactly as
the CLI's are.
"""

from hybridgate.console.data import ConsoleDeps
from hybridgate.console.routes import console_routes

__all__ = ["ConsoleDeps", "console_routes"]
