"""QualityRouter: load, score, thresholds, choose, prompt_text, training and the split."""

from __future__ import annotations

import itertools
import math
import os
import random
from pathlib import Path

import numpy as np
import pytest

from hybridgate.routing.quality import (
    MAX_SYSTEM_CHARS,
    MAX_USER_CHARS,
    QualityRouter,
    prompt_text,
    save_model,
)
from hybridgate.routing.quality_data import Dataset, holdout_mask, load_csv
from hybridgate.routing.quality_features import FeatureSpec, featurize, tokens
from hybridgate.routing.quality_metrics import apgr, sweep
from hybridgate.routing.quality_train import TrainConfig, train

MATH = "Natalia sold clips to 48 of her friends in April, and then she sold half as many in May."
LAW = "Which of the following is the best defense in a prosecution for burglary?\nA. x\nB. y"


def _routellm_dir() -> Path:
    env = os.environ.get("HYBRIDGATE_DATA_DIR")
    base = Path(env) if env else Path(__file__).resolve().parents[3] / "shared" / "data"
    return base / "routellm"


@pytest.fixture(scope="module")
def shipped() -> QualityRouter:
    return QualityRouter.load()


def test_shipped_router_loads_small_and_scores(shipped: QualityRouter) -> None:
    from hybridgate.routing.quality import shipped_model_bytes

    assert len(shipped_model_bytes()) < 512 * 1024
    a, b = shipped.score(MATH), shipped.score(LAW)
    assert math.isfinite(a) and math.isfinite(b) and a != b
    assert shipped.score(MATH) == a  # pure
    assert math.isfinite(shipped.score(""))
    assert math.isfinite(shipped.score("\u00e9\ud800 \x00" * 5000))  # hostile text, bounded


def test_threshold_monotone_in_share_and_floor(shipped: QualityRouter) -> None:
    shares = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.95]
    cuts = [shipped.threshold(strong_share=s) for s in shares]
    assert all(x >= y for x, y in itertools.pairwise(cuts))
    assert cuts[0] > cuts[-1]
    floors = [0.1, 0.3, 0.5, 0.7, 0.9]
    fcuts = [shipped.threshold(quality_floor=q) for q in floors]
    assert all(x >= y for x, y in itertools.pairwise(fcuts))
    assert shipped.threshold(strong_share=0.0) == math.inf
    assert shipped.threshold(strong_share=1.0) == -math.inf
    assert shipped.threshold(quality_floor=0.0) == math.inf


def test_both_settings_take_the_stricter(shipped: QualityRouter) -> None:
    low, high = shipped.threshold(strong_share=0.1), shipped.threshold(quality_floor=0.9)
    assert shipped.threshold(strong_share=0.1, quality_floor=0.9) == min(low, high)


def test_choose_follows_threshold(shipped: QualityRouter) -> None:
    for prompt in (MATH, LAW, ""):
        assert shipped.choose(prompt, strong_share=0.0) == "weak"
        assert shipped.choose(prompt, strong_share=1.0) == "strong"
        cut = shipped.threshold(strong_share=0.4)
        want = "strong" if shipped.score(prompt) >= cut else "weak"
        assert shipped.choose(prompt, strong_share=0.4) == want


def test_bad_settings(shipped: QualityRouter) -> None:
    with pytest.raises(ValueError):
        shipped.threshold()
    with pytest.raises(ValueError):
        shipped.threshold(strong_share=1.5)
    with pytest.raises(ValueError):
        shipped.choose(MATH, quality_floor=-0.1)


def test_share_is_honoured_on_unseen_prompts(shipped: QualityRouter) -> None:
    path = _routellm_dir() / "mmlu_dev.csv"
    if not path.exists():
        pytest.skip(f"shared data not present at {path}")
    data = load_csv(path)
    held = data.subset(holdout_mask(data))  # the shipped router never trained on these
    scores = shipped.score_many(held.prompts)
    for share in (0.2, 0.5, 0.8):
        got = float(np.mean(scores >= shipped.threshold(strong_share=share)))
        assert abs(got - share) < 0.06, (share, got)
    assert apgr(sweep(scores, held.weak, held.strong)) > 0.55


def test_prompt_text_reads_system_and_last_user() -> None:
    req = {
        "model": "auto",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}, {"type": "image"}]},
        ],
    }
    assert prompt_text(req) == "Be brief.\n\nsecond"
    assert prompt_text({"messages": [{"role": "user", "content": "hi"}]}) == "hi"


def test_prompt_text_is_bounded_and_tolerant() -> None:
    long = {
        "messages": [
            {"role": "system", "content": "s" * 10_000},
            {"role": "user", "content": "u" * 100_000},
        ]
    }
    assert len(prompt_text(long)) == MAX_SYSTEM_CHARS + 2 + MAX_USER_CHARS
    junk: dict[str, object] = {"messages": [None, 3, {"role": "user", "content": {"x": 1}}]}
    assert prompt_text(junk) == ""
    assert prompt_text({}) == ""
    assert prompt_text({"messages": "nope"}) == ""


def test_features_deterministic_and_linear() -> None:
    spec = FeatureSpec()
    assert tokens("Add 12 and 3.5!", 100) == ["add", "#2", "and", "#1", ".", "#1", "!"]
    i1, v1 = featurize(MATH, spec)
    i2, v2 = featurize(MATH, spec)
    assert np.array_equal(i1, i2) and np.array_equal(v1, v2)
    assert float(np.linalg.norm(v1)) == pytest.approx(1.0)
    assert int(i1.max()) < spec.dims
    with pytest.raises(ValueError):
        FeatureSpec(dims=1000)


def _synthetic(n: int, seed: int) -> Dataset:
    """The strong model is needed exactly on 'proof' questions; others are noise."""
    rng = random.Random(seed)
    topics = ["proof", "recipe", "travel", "music", "garden"]
    prompts, weak, strong = [], [], []
    for i in range(n):
        topic = topics[i % len(topics)]
        prompts.append(f"question {i} about {topic} {rng.choice(['please', 'now', 'today'])}")
        hard = topic == "proof"
        weak.append(0.0 if hard else float(rng.random() < 0.8))
        strong.append(1.0 if hard else float(rng.random() < 0.85))
    return Dataset("synthetic", prompts, np.array(weak), np.array(strong), None, "0" * 64)


def test_train_save_load_roundtrip(tmp_path: Path) -> None:
    data = _synthetic(400, 1)
    cfg = TrainConfig(spec=FeatureSpec(dims=1 << 12), oof_folds=3)
    model = train([data], cfg)
    out = tmp_path / "r.npz"
    save_model(model, out)
    router = QualityRouter.load(out)
    assert router.meta["holdout"] == {"fraction": cfg.holdout, "seed": cfg.seed}
    assert router.meta["files"][0]["train_rows"] < 400
    assert router.score("question 9999 about proof now") > router.score(
        "question 9999 about music now"
    )
    held = data.subset(holdout_mask(data, cfg.holdout, cfg.seed))
    scores = router.score_many(held.prompts)
    proof = np.array(["proof" in p for p in held.prompts])  # the rule the data was made by
    assert scores[proof].min() > scores[~proof].max()  # learned it, on rows it never saw
    assert apgr(sweep(scores, held.weak, held.strong)) > 0.6
    # calibration: about a fifth of unseen prompts are 'proof', share 0.2 takes about them
    fresh = _synthetic(500, 2)
    scores = router.score_many(fresh.prompts)
    assert abs(float(np.mean(scores >= router.threshold(strong_share=0.2))) - 0.2) < 0.08


def test_load_rejects_garbage(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError):
        QualityRouter.load(bad)
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(4))
    with pytest.raises(ValueError):
        QualityRouter.load(other)


def test_holdout_split_deterministic_and_stratified() -> None:
    data = _synthetic(1000, 3)
    mask = holdout_mask(data, 0.2)
    assert abs(float(mask.mean()) - 0.2) < 0.01
    assert np.array_equal(mask, holdout_mask(data, 0.2))
    order = list(range(len(data)))[::-1]
    flipped = Dataset(
        "f",
        [data.prompts[i] for i in order],
        data.weak[order],
        data.strong[order],
        None,
        data.sha256,
    )
    assert np.array_equal(holdout_mask(flipped, 0.2)[order], mask)  # independent of row order
    need = data.strong * (1 - data.weak)
    assert abs(float(need[mask].mean()) - float(need.mean())) < 0.02
    assert not holdout_mask(data, 0.0).any()


def test_load_rejects_other_archives(tmp_path: Path) -> None:
    npy = tmp_path / "plain.npy"
    np.save(npy, np.zeros(3))
    truncated = tmp_path / "trunc.npz"
    truncated.write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    for path in (npy, truncated):
        with pytest.raises(ValueError):
            QualityRouter.load(path)
