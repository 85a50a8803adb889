"""Optional features and the extra that installs each, with a clear error when missing.

The core install is the gateway itself; charts and the demo's SDK client are
extras (``pip install 'hybridgate[plots]'``), so a production install does not
carry them.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtra(RuntimeError):
    """An optional dependency is not installed; the message says which extra has it."""


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` or explain which ``hybridgate[extra]`` provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtra(
            f"this needs {module.split('.')[0]}: pip install 'hybridgate[{extra}]'"
        ) from exc
