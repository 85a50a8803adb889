"""The generated corpus as a regression test: every positive found, no hard negative flagged."""

from __future__ import annotations

import random

from hybridgate.config import ScannerConfig
from hybridgate.scan import build_scanner
from hybridgate.scan.synth import generate_corpus


def test_generated_corpus_recall_and_hard_negatives() -> None:
    corpus = generate_corpus(random.Random(12345), per_type=8)
    terms = sorted({d.term for d in corpus if d.term})
    sc = build_scanner(ScannerConfig(terms=terms))
    missed, false_alarms = [], []
    for d in corpus:
        res = sc.scan(d.text)
        assert res.complete
        got = [(f.type, f.start, f.end) for f in res.findings]
        if d.type:
            if not any(t == d.type and s < d.end and d.start < e for t, s, e in got):
                missed.append((d.type, d.text))
        elif got:
            false_alarms.append((d.negative, [d.text[s:e] for _, s, e in got]))
    assert missed == []
    assert false_alarms == []
