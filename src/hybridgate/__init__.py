"""hybridgate: the gateway between an organization's apps and every model they use.

Importing the package has no side effects; heavier pieces load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["__version__", "create_app", "verify_action"]

if TYPE_CHECKING:
    from hybridgate.actions.verify import verify_action
    from hybridgate.app import create_app


def __getattr__(name: str) -> Any:
    if name == "verify_action":
        from hybridgate.actions.verify import verify_action

        return verify_action
    if name == "create_app":
        from hybridgate.app import create_app

        return create_app
    raise AttributeError(name)
