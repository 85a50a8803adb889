"""The request path, top to bottom: validate, scan, policy, route, redact,
reserve, send (fallbacks only inside the plan), restore, account, receipt.

Decision logic lives in pure modules (scan, policy, routing, accounting
pricing); this package only sequences them and does the I/O. One module per job:

* :mod:`.exchange` — the :class:`Exchange` facts and the :class:`Prepared` plan;
* :mod:`.deps` — :class:`PipelineDeps`, the collaborators the path is given;
* :mod:`.checks` — request-shape checks (chat, embeddings, output limits);
* :mod:`.decision` — scan a body and decide (shared with ``policy explain``);
* :mod:`.scanning` — the scan budget and the pool large scans run on;
* :mod:`.budget` — the budget hold taken before sending;
* :mod:`.send` — the one place a request leaves for an upstream (fallbacks);
* :mod:`.stream` — streamed chat, restored chunk by chunk;
* :mod:`.close` — the one close: outcome, settle, usage, metrics, receipt;
* :mod:`.core` — :class:`Pipeline`, which opens exchanges and runs the stages.
"""

from hybridgate.pipeline.core import Pipeline
from hybridgate.pipeline.decision import decide, scan_body
from hybridgate.pipeline.deps import PipelineDeps, ScanLimits
from hybridgate.pipeline.exchange import Exchange, Prepared
from hybridgate.pipeline.stream import restored_chunks

__all__ = [
    "Exchange",
    "Pipeline",
    "PipelineDeps",
    "Prepared",
    "ScanLimits",
    "decide",
    "restored_chunks",
    "scan_body",
]
