"""The learned quality router: does this prompt need the strong (frontier) route?

``score`` is a logistic model over hashed word n-grams (see ``quality_features``) trained to
predict "the strong model answers correctly and the weak one does not". The gateway sends a
prompt to the strong route when its score reaches a per-virtual-model threshold, set either
as a target share of strong calls or as a quality floor (minimum expected PGR). Both map to a
score threshold through a calibration table stored with the model, built from *out-of-fold*
scores on the training data, so the shares are what unseen prompts actually get, not what an
overfit model gives its own training rows.

Runtime needs only numpy; a decision is a tokenization, a crc32 per feature and one gather.
The model file is an ``.npz`` read with ``allow_pickle=False``: loading it runs no code.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from hybridgate.routing.quality_features import FEATURE_VERSION, FeatureSpec, featurize

FORMAT = "hybridgate-quality-router"
FORMAT_VERSION = 1
SHIPPED_NAME = "quality_router.npz"
MAX_MODEL_BYTES = 16 << 20
#: How much of a chat request the router reads; the question carries the signal.
MAX_USER_CHARS = 4000
MAX_SYSTEM_CHARS = 1000


@dataclass(frozen=True)
class QualityModel:
    """Everything a model file holds; ``meta`` is provenance (data hashes, holdout, metrics)."""

    spec: FeatureSpec
    weights: npt.NDArray[np.float64]
    bias: float
    #: calibration, ascending share 0..1: the score threshold giving that share of strong
    #: calls on unseen prompts, and the PGR expected there (both from out-of-fold scores)
    calib_share: npt.NDArray[np.float64]
    calib_threshold: npt.NDArray[np.float64]
    calib_pgr: npt.NDArray[np.float64]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.weights.shape != (self.spec.dims,):
            raise ValueError("weights do not match the feature dimension")
        k = len(self.calib_share)
        if k < 2 or self.calib_threshold.shape != (k,) or self.calib_pgr.shape != (k,):
            raise ValueError("calibration arrays are malformed")
        if self.calib_share[0] != 0.0 or self.calib_share[-1] != 1.0:
            raise ValueError("calibration must span share 0..1")
        if np.any(np.diff(self.calib_share) <= 0):
            raise ValueError("calibration shares must increase")
        if not np.all(np.isfinite(self.calib_threshold)) or np.any(
            np.diff(self.calib_threshold) > 0
        ):
            raise ValueError("calibration thresholds must be finite and non-increasing")
        if not np.all(np.isfinite(self.weights)) or not math.isfinite(self.bias):
            raise ValueError("model weights must be finite")


def save_model(model: QualityModel, path: str | Path) -> None:
    meta = {
        **model.meta,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "feature_version": FEATURE_VERSION,
        "dims": model.spec.dims,
        "max_chars": model.spec.max_chars,
        "bigrams": model.spec.bigrams,
    }
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        weights=model.weights.astype(np.float16),
        bias=np.asarray([model.bias], dtype=np.float64),
        calib_share=model.calib_share.astype(np.float64),
        calib_threshold=model.calib_threshold.astype(np.float64),
        calib_pgr=model.calib_pgr.astype(np.float64),
        meta=np.asarray(json.dumps(meta, sort_keys=True)),
    )
    Path(path).write_bytes(buf.getvalue())


def _load_bytes(raw: bytes, origin: str) -> QualityModel:
    if len(raw) > MAX_MODEL_BYTES:
        raise ValueError(f"{origin}: router file too large")
    try:
        loaded = np.load(io.BytesIO(raw), allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with loaded as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{origin}: not a router file ({exc})") from exc
    try:
        meta = json.loads(str(arrays["meta"]))
        if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise ValueError("unknown format")
        if meta.get("feature_version") != FEATURE_VERSION:
            raise ValueError("trained with another feature version; retrain it")
        spec = FeatureSpec(
            dims=int(meta["dims"]), max_chars=int(meta["max_chars"]), bigrams=bool(meta["bigrams"])
        )
        return QualityModel(
            spec=spec,
            weights=arrays["weights"].astype(np.float64),
            bias=float(arrays["bias"][0]),
            calib_share=arrays["calib_share"].astype(np.float64),
            calib_threshold=arrays["calib_threshold"].astype(np.float64),
            calib_pgr=arrays["calib_pgr"].astype(np.float64),
            meta=meta,
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"{origin}: invalid router file ({exc})") from exc


def shipped_model_bytes() -> bytes:
    return (resources.files("hybridgate") / "data" / SHIPPED_NAME).read_bytes()


class QualityRouter:
    """Immutable after load, so one instance serves all requests and threads."""

    __slots__ = ("model",)

    def __init__(self, model: QualityModel) -> None:
        self.model = model

    @classmethod
    def load(cls, path: str | Path | None = None) -> QualityRouter:
        if path is None:
            return cls(_load_bytes(shipped_model_bytes(), SHIPPED_NAME))
        p = Path(path)
        return cls(_load_bytes(p.read_bytes(), str(p)))

    @property
    def meta(self) -> dict[str, Any]:
        return self.model.meta

    def score(self, prompt: str) -> float:
        """Log-odds that the strong route is needed (strong right, weak wrong)."""
        idx, vals = featurize(prompt, self.model.spec)
        return float(np.dot(self.model.weights[idx], vals)) + self.model.bias

    def score_many(self, prompts: list[str]) -> npt.NDArray[np.float64]:
        return np.asarray([self.score(p) for p in prompts], dtype=np.float64)

    def threshold(
        self, *, strong_share: float | None = None, quality_floor: float | None = None
    ) -> float:
        """Score at or above which a prompt goes strong.

        ``strong_share``: target fraction of strong calls. ``quality_floor``: minimum expected
        PGR (0 = weak quality is fine, 1 = all of the strong model's advantage). With both,
        the stricter (more strong calls) wins: a floor is a promise, a share a budget hint.
        ``inf`` means never strong, ``-inf`` always strong.
        """
        if strong_share is None and quality_floor is None:
            raise ValueError("give strong_share or quality_floor")
        shares: list[float] = []
        if strong_share is not None:
            shares.append(_unit(strong_share, "strong_share"))
        if quality_floor is not None:
            shares.append(self._share_for_floor(_unit(quality_floor, "quality_floor")))
        return self._threshold_for_share(max(shares))

    def choose(
        self,
        prompt: str,
        *,
        strong_share: float | None = None,
        quality_floor: float | None = None,
    ) -> Literal["strong", "weak"]:
        cut = self.threshold(strong_share=strong_share, quality_floor=quality_floor)
        return "strong" if self.score(prompt) >= cut else "weak"

    def _share_for_floor(self, floor: float) -> float:
        m = self.model
        if floor <= 0.0:
            return 0.0
        hits = np.nonzero(m.calib_pgr >= floor)[0]
        return float(m.calib_share[hits[0]]) if len(hits) else 1.0

    def _threshold_for_share(self, share: float) -> float:
        m = self.model
        if share <= 0.0:
            return math.inf
        if share >= 1.0:
            return -math.inf
        # calib_threshold falls as share rises; interp wants ascending x
        return float(np.interp(share, m.calib_share, m.calib_threshold))


def _unit(value: float, name: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must be within [0, 1]")
    return v


def _content_text(content: Any) -> str:
    """Text of an OpenAI message content: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [
            p["text"]
            for p in content
            if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        ]
        return "\n".join(parts)
    return ""


def prompt_text(request: dict[str, Any]) -> str:
    """What the router reads: the system text then the last user message, both bounded.

    Earlier turns are left out on purpose: the decision is about the question being asked
    now, and reading a whole conversation would make latency grow with its length.
    """
    messages = request.get("messages")
    system: list[str] = []
    top = request.get("system")  # Anthropic-style top-level system
    if isinstance(top, str | list):
        system.append(_content_text(top))
    last_user: Any = None
    if isinstance(messages, list):
        for msg in messages:
            if not isinstance(msg, dict):
                continue
            role = msg.get("role")
            if role in ("system", "developer"):
                system.append(_content_text(msg.get("content"))[:MAX_SYSTEM_CHARS])
            elif role == "user":
                last_user = msg.get("content")
    user = _content_text(last_user)
    sys_text = "\n".join(s for s in system if s)[:MAX_SYSTEM_CHARS]
    user_text = user[:MAX_USER_CHARS]
    return f"{sys_text}\n\n{user_text}" if sys_text else user_text
