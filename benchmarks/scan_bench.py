"""Scanner benchmark: precision/recall per entity type and throughput.

One run prints:

1. the Presidio research synthetic set (``shared/data/presidio``) for the six
   types both tools cover, for hybridgate and (with ``--presidio-python``)
   Presidio's analyzer with its pattern recognizers and the no-op NLP engine,
   run in a subprocess with that interpreter so it never enters this venv;
2. a generated corpus (fixed seed): prompts carrying identifiers and secrets,
   and hard negatives that look like them;
3. throughput on the Presidio texts and the median time for a 1 KB prompt;
4. the spelling corpus (``hybridgate.scan.variants``): how many spellings of
   each value leak after masking, ordinary and adversarial reported apart,
   beside Presidio on the same texts when available;
5. the false-flag rate on the corpus' hard negatives;
6. what normalization costs and the whole-request scan of a 1 KB chat body;
7. fresh text (never seen, no cache) as one chat request of 10 KB, 100 KB and
   1 MB: CPU ms and ms per KB, for agent prose and for the 1 KB prompts joined;
8. every hostile input at 256 KB and 1 MB (CPU seconds, one scan; the ratio
   shows linearity) and the worst 1 MB case;
9. agent turns whose history was seen before (``benchmarks/agent_scan_bench.py``'s
   sessions): the last turn of 10 KB, 100 KB and 400 KB sessions fresh, with its
   history in the scan cache, and the same body again.

    .venv/bin/python benchmarks/scan_bench.py --presidio-python /tmp/presidio-venv/bin/python
    .venv/bin/python benchmarks/scan_bench.py --sections fresh,adversarial,seen   # speed only
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_scan_bench import conversation, prose  # benchmarks/ is on sys.path
from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner, extract_segments, scan_request
from hybridgate.scan.cache import CachedScanner, ScanCache, scanner_fingerprint
from hybridgate.scan.normalize import normalize
from hybridgate.scan.seen import scan_body
from hybridgate.scan.synth import generate_corpus, generate_prompts_1kb
from hybridgate.scan.variants import (
    ADVERSARIAL,
    ORDINARY,
    exposed,
    hard_negatives,
    org_terms,
    variant_corpus,
)

SECTIONS = ("accuracy", "spelling", "fresh", "adversarial", "seen")
PRESIDIO_TYPES = (
    "CREDIT_CARD", "IBAN_CODE", "US_SSN", "EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS",
)  # fmt: skip

PRESIDIO_RUNNER = r"""
import json, sys, time, logging
logging.disable(logging.CRITICAL)
import tldextract
# No network on benchmark machines: use the bundled public-suffix snapshot only.
tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
from presidio_analyzer.nlp_engine import NoOpNlpEngine
eng = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
eng.load()
reg = RecognizerRegistry(supported_languages=["en"])
reg.load_predefined_recognizers(nlp_engine=eng, languages=["en"])
an = AnalyzerEngine(registry=reg, nlp_engine=eng, supported_languages=["en"])
req = json.load(sys.stdin)
ents = req["entities"]
an.analyze("warm up 4111 1111 1111 1111 a@b.com", language="en", entities=ents)
elapsed = float("inf")
for _ in range(req["passes"]):
    out = []
    t0 = time.perf_counter()
    for text in req["texts"]:
        res = an.analyze(text, language="en", entities=ents)
        out.append([[r.entity_type, r.start, r.end] for r in res])
    elapsed = min(elapsed, time.perf_counter() - t0)
json.dump({"predictions": out, "elapsed": elapsed}, sys.stdout)
"""

Span = tuple[str, int, int]
PASSES = 2


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def data_dir() -> Path:
    env = os.environ.get("HYBRIDGATE_DATA_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


def score(
    gold: list[list[Span]], pred: list[list[Span]], types: tuple[str, ...]
) -> dict[str, Counts]:
    """Span-overlap matching per type: a prediction counts once, a gold span once."""
    counts = {t: Counts() for t in types}
    for g_spans, p_spans in zip(gold, pred, strict=True):
        for t in types:
            g = [(s, e) for ty, s, e in g_spans if ty == t]
            p = [(s, e) for ty, s, e in p_spans if ty == t]
            matched_g: set[int] = set()
            for ps, pe in p:
                hit = next(
                    (
                        i
                        for i, (gs, ge) in enumerate(g)
                        if i not in matched_g and ps < ge and gs < pe
                    ),
                    None,
                )
                if hit is None:
                    counts[t].fp += 1
                else:
                    matched_g.add(hit)
                    counts[t].tp += 1
            counts[t].fn += len(g) - len(matched_g)
    return counts


def hybridgate_predict(scanner: Scanner, texts: list[str]) -> tuple[list[list[Span]], float]:
    out: list[list[Span]] = []
    t0 = time.perf_counter()
    for text in texts:
        res = scanner.scan(text)
        out.append([(f.type, f.start, f.end) for f in res.findings])
    return out, time.perf_counter() - t0


def presidio_predict(python: str, texts: list[str], passes: int) -> tuple[list[list[Span]], float]:
    """Presidio in its own interpreter; returns predictions and its best pass time."""
    proc = subprocess.run(
        [python, "-c", PRESIDIO_RUNNER],
        input=json.dumps({"texts": texts, "entities": list(PRESIDIO_TYPES), "passes": passes}),
        capture_output=True,
        text=True,
        check=True,
        timeout=3600,
    )
    data = json.loads(proc.stdout)
    preds = [[(t, s, e) for t, s, e in row] for row in data["predictions"]]
    return preds, float(data["elapsed"])


def load_presidio_set(path: Path) -> tuple[list[str], list[list[Span]]]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    texts = [r["full_text"] for r in raw]
    gold = [
        [
            (s["entity_type"], s["start_position"], s["end_position"])
            for s in r["spans"]
            if s["entity_type"] in PRESIDIO_TYPES
        ]
        for r in raw
    ]
    return texts, gold


def prompt_latency(scanner: Scanner, prompts: list[str]) -> tuple[float, float]:
    """(median, p95) ms per prompt; each prompt's time is its best of 5 scans."""
    for prompt in prompts[:50]:
        scanner.scan(prompt)
    per: list[float] = []
    for prompt in prompts:
        best = float("inf")
        for _ in range(5):  # filters scheduler noise on a shared machine
            t0 = time.perf_counter()
            scanner.scan(prompt)
            best = min(best, time.perf_counter() - t0)
        per.append(best)
    return statistics.median(per) * 1e3, sorted(per)[int(len(per) * 0.95)] * 1e3


def table(title: str, columns: list[str], rows: list[list[str]]) -> str:
    lines = [f"### {title}", "", "| " + " | ".join(columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(lines) + "\n"


def f2(x: float) -> str:
    return f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--presidio-python", help="interpreter of a venv with presidio-analyzer")
    ap.add_argument("--seed", type=int, default=20260101)
    ap.add_argument("--docs-per-type", type=int, default=60)
    ap.add_argument(
        "--sections",
        default=",".join(SECTIONS),
        help=f"comma-separated subset of {','.join(SECTIONS)} (default: all)",
    )
    args = ap.parse_args(argv)
    sections = set(args.sections.split(","))
    if sections - set(SECTIONS):
        ap.error(f"unknown section(s): {', '.join(sorted(sections - set(SECTIONS)))}")

    rnd = random.Random(args.seed)
    corpus = generate_corpus(rnd, args.docs_per_type)
    terms = sorted({d.term for d in corpus if d.term})
    scanner = build_scanner(ScannerConfig(terms=terms))
    prompts = generate_prompts_1kb(random.Random(args.seed + 1), 400)
    if "accuracy" in sections:
        accuracy_section(args, corpus, scanner, prompts)
    if "spelling" in sections:
        spelling_section(args, prompts)
    if "fresh" in sections:
        fresh_section(scanner, args.seed + 4)
    if "adversarial" in sections:
        adversarial_section(scanner)
    if "seen" in sections:
        seen_section(args.seed + 5)
    return 0


def accuracy_section(
    args: argparse.Namespace, corpus: list[Any], scanner: Scanner, prompts: list[str]
) -> None:
    """Sections 1-3: the Presidio set, the generated corpus, and the 1 KB prompt speed."""
    terms = sorted({d.term for d in corpus if d.term})
    shared_scanner = build_scanner(ScannerConfig())

    # --- 1. Presidio research synthetic set ---------------------------------
    ppath = data_dir() / "presidio" / "synth_dataset_v2.json"
    texts, gold = load_presidio_set(ppath)
    hg_pred, _ = hybridgate_predict(shared_scanner, texts)
    hg_counts = score(gold, hg_pred, PRESIDIO_TYPES)
    # Throughput: best of PASSES full passes for both tools (one core each).
    hg_times = [hybridgate_predict(shared_scanner, texts)[1] for _ in range(PASSES)]
    total_chars = sum(len(t) for t in texts)
    hg_cps = total_chars / min(hg_times)
    pr_counts: dict[str, Counts] | None = None
    pr_cps: float | None = None
    if args.presidio_python:
        pr_pred, pr_elapsed = presidio_predict(args.presidio_python, texts, PASSES)
        pr_counts = score(gold, pr_pred, PRESIDIO_TYPES)
        pr_cps = total_chars / pr_elapsed
    rows = []
    for t in PRESIDIO_TYPES:
        c = hg_counts[t]
        row = [t, str(c.tp + c.fn), f2(c.precision), f2(c.recall)]
        if pr_counts is not None:
            pc = pr_counts[t]
            row += [f2(pc.precision), f2(pc.recall)]
        rows.append(row)
    cols = ["type", "gold spans", "hybridgate P", "hybridgate R"]
    if pr_counts is not None:
        cols += ["Presidio P", "Presidio R"]
    print(table(f"Presidio synthetic set ({len(texts)} texts)", cols, rows))
    if pr_counts is None:
        print("(Presidio columns skipped: pass --presidio-python PATH to include them)\n")

    # --- 2. Generated corpus ------------------------------------------------------
    gen_texts = [d.text for d in corpus]
    gen_gold = [[(d.type, d.start, d.end)] if d.type else [] for d in corpus]
    gen_pred, _ = hybridgate_predict(scanner, gen_texts)
    types = tuple(sorted({d.type for d in corpus if d.type}))
    gen_counts = score(gen_gold, gen_pred, types)
    rows = []
    for t in types:
        c = gen_counts[t]
        rows.append([t, str(c.tp + c.fn), f2(c.precision), f2(c.recall)])
    print(table(f"Generated corpus, positives (seed {args.seed})", ["type", "n", "P", "R"], rows))
    neg_docs = [(d, p) for d, p in zip(corpus, gen_pred, strict=True) if d.negative]
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for d, spans in neg_docs:
        by_kind[d.negative][0] += 1
        by_kind[d.negative][1] += 1 if spans else 0
    rows = [[k, str(n), str(fp), f2(1 - fp / n)] for k, (n, fp) in sorted(by_kind.items())]
    total_n = sum(n for n, _ in by_kind.values())
    total_fp = sum(fp for _, fp in by_kind.values())
    rows.append(["**all**", str(total_n), str(total_fp), f2(1 - total_fp / total_n)])
    print(
        table(
            "Generated hard negatives (a document is a false alarm if anything is flagged)",
            ["kind", "docs", "false alarms", "precision"],
            rows,
        )
    )
    for d, spans in neg_docs:
        if spans:
            shown = ", ".join(f"{t}:{d.text[s:e]!r}" for t, s, e in spans)
            print(f"  false alarm [{d.negative}]: {shown}")

    # --- 3. Speed -----------------------------------------------------------------
    med, p95 = prompt_latency(scanner, prompts)
    rows = [["hybridgate", f"{hg_cps / 1e6:.2f}", f"{med:.3f}", f"{p95:.3f}"]]
    big_terms = [*terms, *(f"codename {i:05d}" for i in range(20_000))]
    big = build_scanner(ScannerConfig(terms=big_terms))
    bmed, bp95 = prompt_latency(big, prompts)
    rows.append(["hybridgate, 20,000 org terms", "", f"{bmed:.3f}", f"{bp95:.3f}"])
    if pr_cps is not None:
        rows.append(["Presidio (pattern recognizers, no-op NLP)", f"{pr_cps / 1e6:.3f}", "", ""])
    print(
        table(
            "Speed (one core)",
            ["scanner", "MB/s on Presidio set", "median ms / 1 KB prompt", "p95 ms / 1 KB"],
            rows,
        )
    )
    if pr_cps is not None:
        print(f"throughput ratio hybridgate / Presidio: {hg_cps / pr_cps:.0f}x")
    avg_len = statistics.mean(len(x) for x in prompts)
    print(f"(1 KB prompts: {len(prompts)}, mean {avg_len:.0f} chars)\n")


def _mask(text: str, spans: list[Span]) -> str:
    out, pos = [], 0
    for t, s, e in sorted(spans, key=lambda x: (x[1], x[2])):
        if s < pos:
            s = pos
        if e <= s:
            continue
        out += [text[pos:s], f"<{t}>"]
        pos = e
    out.append(text[pos:])
    return "".join(out)


def _time(
    fn: object, *a: object, repeat: int = 3, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Best seconds of ``fn(*a)`` over ``repeat`` calls, by ``clock``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = clock()
        fn(*a)  # type: ignore[operator]
        best = min(best, clock() - t0)
    return best


def _median_ms(fn: object, items: list[str], repeat: int = 5) -> float:
    return statistics.median(_time(fn, x, repeat=repeat) for x in items) * 1e3


def adversarial_inputs(n: int) -> dict[str, str]:
    """Hostile texts of about ``n`` characters each."""

    def rep(unit: str) -> str:
        return unit * max(1, n // len(unit))

    return {
        "digits and spaces": rep("1 "),
        "digits and dots": rep("1."),
        "phone-shaped": rep("555 123 4567 "),
        "zero-width between digits": rep("4\u200b"),
        "soft hyphen between digits": rep("1\u00ad"),
        "fullwidth digits": rep("\uff14\uff11 "),
        "HTML entities": rep("&#52;"),
        "percent escapes": rep("%34"),
        "\\u escapes": rep("\\u0034"),
        "base64 runs": rep("NDExMSAxMTEx "),
        "one long base64 run": rep("QUJDREVGR0g"),
        "e-mail-ish": rep("a@"),
        "password=": rep("password="),
        "KEY=": rep("AB_KEY=x "),
        "Authorization: Basic": rep("Authorization: Basic "),
        "AKIA": rep("AKIA"),
        "org term pieces": rep("Project  Blue-"),
        "mixed prose": rep("The order 4111 ships to jane@example.com, call +1 415 555 2671. "),
    }


def spelling_section(args: argparse.Namespace, prompts: list[str]) -> None:
    scanner = build_scanner(ScannerConfig(terms=org_terms()))
    variants = variant_corpus(random.Random(args.seed + 2), values_per_kind=3)
    texts = [v.prompt for v in variants]
    hg = [[(f.type, f.start, f.end) for f in scanner.scan(t).findings] for t in texts]
    pr: list[list[Span]] | None = None
    if args.presidio_python:
        pr, _ = presidio_predict(args.presidio_python, texts, 1)
    tally: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    missed: dict[str, list[str]] = defaultdict(list)
    for i, v in enumerate(variants):
        tal = tally[(v.family, v.kind)]
        tal[0] += 1
        if exposed(_mask(v.prompt, hg[i]), v.forbidden):
            tal[1] += 1
            missed[v.family].append(f"{v.kind}/{v.spelling}")
        if pr is not None and exposed(_mask(v.prompt, pr[i]), v.forbidden):
            tal[2] += 1
    cols = ["family", "kind", "spellings", "hybridgate leaks"]
    if pr is not None:
        cols.append("Presidio leaks")
    rows: list[list[str]] = []
    for family in (ORDINARY, ADVERSARIAL):
        fam = [(k, c) for (f, k), c in sorted(tally.items()) if f == family]
        for kind, (n, leak, pleak) in fam:
            row = [family, kind, str(n), str(leak)]
            if pr is not None:
                row.append(str(pleak))
            rows.append(row)
        n = sum(c[0] for _, c in fam)
        leak = sum(c[1] for _, c in fam)
        row = [f"**{family}**", "all", str(n), f"{leak} ({leak / n:.1%})"]
        if pr is not None:
            pl = sum(c[2] for _, c in fam)
            row.append(f"{pl} ({pl / n:.1%})")
        rows.append(row)
    print(
        table(
            "Spelling corpus: values still readable after masking (verbatim, normalized, decoded)",
            cols,
            rows,
        )
    )
    for family, items in missed.items():
        print(f"  {family} leaks: {', '.join(sorted(set(items)))}")

    negs = hard_negatives(random.Random(args.seed + 3), per_kind=50)
    fp: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for kind, text in negs:
        fp[kind][0] += 1
        fp[kind][1] += 1 if scanner.scan(text).findings else 0
    rows = [[k, str(n), str(f), f"{f / n:.1%}"] for k, (n, f) in sorted(fp.items())]
    tn = sum(n for n, _ in fp.values())
    tf = sum(f for _, f in fp.values())
    rows.append(["**all**", str(tn), str(tf), f"{tf / tn:.1%}"])
    print(table("Hard negatives: false-flag rate", ["kind", "texts", "flagged", "rate"], rows))

    # Normalization cost: the normalize() step alone, and a whole 1 KB scan.
    non_ascii = [p.replace(" ", "\u00a0", 3).replace("e", "\u00e9", 2) for p in prompts]
    escaped = [p + " &amp; 50% \\n" for p in prompts]
    rows = [
        ["normalize(), ASCII 1 KB", f"{_median_ms(normalize, prompts):.4f}"],
        ["normalize(), 1 KB with NBSP and accents", f"{_median_ms(normalize, non_ascii):.4f}"],
        ["normalize(), 1 KB with & % \\ to decode", f"{_median_ms(normalize, escaped):.4f}"],
        ["scan(), ASCII 1 KB", f"{_median_ms(scanner.scan, prompts):.4f}"],
        ["scan(), 1 KB with NBSP and accents", f"{_median_ms(scanner.scan, non_ascii):.4f}"],
    ]
    bodies = [
        {
            "model": "auto",
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "You are a support assistant."},
                {"role": "user", "content": p},
            ],
        }
        for p in prompts[:200]
    ]

    def whole(body: dict[str, object]) -> None:
        segs, uns = extract_segments(body)
        scan_request(scanner, segs, uns)

    req = statistics.median(_time(whole, b, repeat=5) for b in bodies) * 1e3
    rows.append(["whole request (extract + scan + seams + sweep), 1 KB chat", f"{req:.4f}"])
    print(table("Normalization and request cost (median ms)", ["what", "ms"], rows))


def adversarial_section(scanner: Scanner) -> None:
    """Each hostile pattern at 256 KB and 1 MB: one scan each, CPU seconds."""
    rows = []
    worst = ("", 0.0)
    for name, text in adversarial_inputs(1_000_000).items():
        quarter = text[: len(text) // 4]
        t1 = _cpu(scanner.scan, text)
        tq = _cpu(scanner.scan, quarter)
        rows.append([name, f"{tq:.3f}", f"{t1:.3f}", f"{t1 / tq:.1f}"])
        if t1 > worst[1]:
            worst = (name, t1)
    print(
        table(
            "Adversarial inputs (seconds, one scan)",
            ["input", "256 KB", "1 MB", "ratio (4 = linear)"],
            rows,
        )
    )
    print(f"worst 1 MB: {worst[0]} in {worst[1]:.3f} s")


def _cpu(fn: object, *a: object, repeat: int = 1) -> float:
    """Best CPU seconds of this process over ``repeat`` calls (steadier than wall time
    on a shared machine; the scan is single-threaded)."""
    return _time(fn, *a, repeat=repeat, clock=time.process_time)


def fresh_texts(seed: int, size: int) -> dict[str, str]:
    """Fresh text of ``size`` characters: agent prose (code, tool output, rare
    values) and the generated 1 KB prompts joined (a value in most of them)."""
    prompts = generate_prompts_1kb(random.Random(seed), max(1, size // 900) + 1)
    joined = "\n".join(prompts)
    while len(joined) < size:
        joined += "\n" + joined
    return {
        "agent prose": prose(random.Random(seed), size),
        "1 KB prompts joined": joined[:size],
    }


def fresh_section(scanner: Scanner, seed: int) -> None:
    """Whole-request cost of text never seen before (no cache): extract + scan_request
    of a chat body whose user message is that text."""
    rows = []
    for size in (10 * 1024, 100 * 1024, 1024 * 1024):
        for kind, text in fresh_texts(seed, size).items():
            body: dict[str, object] = {
                "model": "auto",
                "messages": [
                    {"role": "system", "content": "You are a coding agent."},
                    {"role": "user", "content": text},
                ],
            }

            def whole(b: dict[str, object] = body) -> None:
                segs, uns = extract_segments(b)
                scan_request(scanner, segs, uns)

            cpu = _cpu(whole, repeat=1 if size > 200_000 else 3)
            kb = size / 1024
            rows.append([kind, f"{kb:.0f} KB", f"{cpu * 1e3:.1f}", f"{cpu * 1e3 / kb:.3f}"])
    print(
        table(
            "Fresh text, whole request (extract + scan + seams + sweep; CPU ms, best of 3, "
            "1 MB once)",
            ["text", "size", "ms", "ms per KB"],
            rows,
        )
    )


def seen_section(seed: int) -> None:
    """The last turn of an agent session: fresh, with its history seen, and seen whole.

    The gateway's path (``scan_body`` with a cached scanner); each repetition
    warms a new cache with every earlier turn, so "history seen" is the first
    time the last turn is scanned. CPU ms, best of 3.
    """
    cfg = ScannerConfig(terms=["Project Falcon", "Bluebird"])
    plain = build_scanner(cfg)
    rows = []
    for kb in (10, 100, 400):
        bodies = conversation(kb * 1024, 20, seed)
        last = bodies[-1]
        fresh = seen = again = float("inf")
        for _ in range(3):
            cached = CachedScanner.wrap(
                plain, ScanCache(b"scan-bench-key-0123456789abcdef"), scanner_fingerprint(cfg)
            )
            for body in bodies[:-1]:
                scan_body(cached, body)
            fresh = min(fresh, _cpu(scan_body, plain, last))
            seen = min(seen, _cpu(scan_body, cached, last))
            again = min(again, _cpu(scan_body, cached, last))
        size = len(json.dumps(last)) / 1024
        rows.append(
            [f"{size:.0f} KB", f"{fresh * 1e3:.2f}", f"{seen * 1e3:.2f}", f"{again * 1e3:.2f}"]
        )
    print(
        table(
            "Agent turn, last of 20 (extract + scan; CPU ms, best of 3)",
            ["last request", "fresh", "history seen before", "whole body seen before"],
            rows,
        )
    )


if __name__ == "__main__":
    raise SystemExit(main())
