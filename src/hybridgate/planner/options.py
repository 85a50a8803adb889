"""User option specs plus the catalog make TCO options, each figure saying where it came from.

Specs are short strings so a comparison fits on one command line::

    --api gpt-4o                       price from the catalog
    --api my-model:in=0.5,out=1.5      price given
    --self-host "llama-3-70b:gpus=2,gpu=h100,hourly=2.5,tps=1200,util=0.6,ops=500"

Parsing is strict: unknown keys, repeated keys and non-numbers are errors,
because a typo in a cost input silently changes the answer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass

from hybridgate.planner.catalog import Catalog, CatalogEntry
from hybridgate.planner.gpus import find_gpu
from hybridgate.planner.hardware import MissingFact, resolve_precision
from hybridgate.planner.tco import ApiOption, SelfHostOption, Workload
from hybridgate.planner.throughput import Throughput, best_throughput, measured

#: route name -> measured (tokens/s, where it was read), from the usage log
MeasuredLookup = Callable[[str], tuple[float, str]]

_SELF_KEYS = {
    "name": "option label",
    "gpus": "GPUs per replica",
    "gpu": "GPU model (catalog throughput, or the roofline ceiling when tps= is not given)",
    "quant": "native (default: the format the weights ship in)|bf16|fp16|fp8|int8|mxfp4|int4",
    "hourly": "USD per GPU-hour (rented)",
    "purchase": "USD per GPU (bought)",
    "months": "amortization months for a purchase (default 36)",
    "util": "fraction of capacity used on average (default 0.5)",
    "tps": "tokens per second per GPU, input and output (measured; overrides everything)",
    "measured": "a route name: tokens/s from its busiest minute in the gateway's usage log",
    "ops": "operations USD per month",
    "eng": "engineering USD per month",
    "setup": "one-off setup USD",
    "stream_tps": "decode tokens per second per stream (for the latency check)",
}
_API_KEYS = {"in": "USD per Mtok input", "out": "USD per Mtok output", "name": "option label"}
MAX_SPEC = 500


class SpecError(ValueError):
    pass


@dataclass(frozen=True)
class ParsedSpec:
    model: str
    values: dict[str, str]


def parse_spec(spec: str, allowed: dict[str, str]) -> ParsedSpec:
    if len(spec) > MAX_SPEC:
        raise SpecError("option spec too long")
    model, _, rest = spec.partition(":")
    model = model.strip()
    if not model:
        raise SpecError(f"{spec!r}: missing model name before ':'")
    values: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        if not eq or not val.strip():
            raise SpecError(f"{spec!r}: {part!r} is not key=value")
        if key not in allowed:
            raise SpecError(f"{spec!r}: unknown key {key!r}; known: {', '.join(sorted(allowed))}")
        if key in values:
            raise SpecError(f"{spec!r}: {key!r} given twice")
        values[key] = val.strip()
    return ParsedSpec(model, values)


def _num(p: ParsedSpec, key: str, *, positive: bool = False) -> float | None:
    raw = p.values.get(key)
    if raw is None:
        return None
    try:
        v = float(raw.replace("_", ""))
    except ValueError:
        raise SpecError(f"{p.model}: {key}={raw!r} is not a number") from None
    if not math.isfinite(v) or v < 0 or (positive and v == 0):
        raise SpecError(
            f"{p.model}: {key} must be a {'positive' if positive else 'non-negative'} finite number"
        )
    return v


def api_option(spec: str, catalog: Catalog) -> tuple[ApiOption, list[str]]:
    """An API option and notes (licence terms worth knowing)."""
    p = parse_spec(spec, _API_KEYS)
    entry = catalog.find(p.model)
    pin, pout = _num(p, "in"), _num(p, "out")
    label = p.values.get("name", entry.name if entry else p.model)
    if pin is not None and pout is not None:
        return ApiOption(label, pin, pout, "user-supplied"), []
    if (pin is None) != (pout is None):
        raise SpecError(f"{p.model}: give both in= and out= prices, or neither")
    if entry is None:
        raise SpecError(f"{p.model}: not in the catalog; give prices as {p.model}:in=X,out=Y")
    if entry.pricing is None:
        raise SpecError(f"{entry.name}: the catalog has no API price; give in=X,out=Y")
    pr = entry.pricing
    src = f"catalog, as of {pr.as_of}: {pr.source}" if pr.as_of else f"catalog: {pr.source}"
    notes = _licence_notes(entry)
    api = entry.api
    if api is not None and api.status_on(dt.date.today()) != "active":
        repl = f"; its replacement is {api.replacement}" if api.replacement else ""
        notes.insert(
            0,
            f"{entry.name}: {api.id} is {api.status_on(dt.date.today())} "
            f"(as of {api.as_of}){repl} — this prices a model you cannot call",
        )
    return ApiOption(label, pr.input_per_mtok, pr.output_per_mtok, src), notes


def self_host_option(
    spec: str,
    catalog: Catalog,
    workload: Workload | None = None,
    measured_lookup: MeasuredLookup | None = None,
) -> tuple[SelfHostOption, list[str]]:
    """A self-hosted option; throughput: ``tps=``, ``measured=ROUTE``, catalog, or roofline.

    Without ``tps=`` or ``measured=``, ``gpu=`` names the card and the planner
    takes the catalog's sourced figure for it, else the roofline ceiling at
    the workload's token mix (an upper bound, said so in the notes). The
    precision is the weights' native one unless ``quant=`` says otherwise.
    """
    p = parse_spec(spec, _SELF_KEYS)
    entry = catalog.find(p.model)
    if entry is None:
        raise SpecError(f"{p.model}: not in the catalog (add it under `catalog:` in your config)")
    if not entry.self_hostable:
        raise SpecError(f"{entry.name}: weights are not available; it cannot be self-hosted")
    gpus = _num(p, "gpus", positive=True)
    if gpus is not None and gpus != int(gpus):
        raise SpecError(f"{p.model}: gpus must be a whole number")
    gpu_name = p.values.get("gpu")
    try:
        precision, why = resolve_precision(entry, p.values.get("quant", "native"))
        gpu = find_gpu(gpu_name) if gpu_name else None
    except (ValueError, KeyError) as exc:
        raise SpecError(f"{p.model}: {exc}") from None
    notes = [f"{entry.name}: sized at {why}"]
    tps = _num(p, "tps", positive=True)
    route = p.values.get("measured")
    if tps is not None and route is not None:
        raise SpecError(f"{p.model}: give tps= or measured=, not both")
    n_gpus = 1 if gpus is None else int(gpus)
    found: Throughput | None = None
    if tps is not None:
        tps_src, upper = "user-supplied", False
    elif route is not None:
        if measured_lookup is None:
            raise SpecError(f"{p.model}: measured= needs the gateway's usage log (--home/--config)")
        try:
            total, where = measured_lookup(route)
        except ValueError as exc:
            raise SpecError(f"{p.model}: {exc}") from None
        found = measured(total / n_gpus, n_gpus, precision, where)
        tps, tps_src, upper = found.tokens_per_second_per_gpu, found.source, False
    else:
        if gpu is None:
            raise SpecError(
                f"{entry.name}: give gpu= (to use the catalog's figure or the roofline ceiling), "
                "tps=N (your measured tokens/s per GPU) or measured=ROUTE"
            )
        w_in = 1000.0 if workload is None else workload.input_tokens
        w_out = 500.0 if workload is None else max(1.0, workload.output_tokens)
        try:
            found = best_throughput(entry, gpu, precision, w_in, w_out)
        except MissingFact as exc:
            raise SpecError(f"{entry.name}: cannot size without tps=: {exc}") from None
        if gpus is None:
            n_gpus = found.gpus_per_replica
        elif n_gpus < found.gpus_per_replica:
            raise SpecError(
                f"{entry.name} at {precision} needs {found.gpus_per_replica}× {gpu.name} per "
                f"replica; gpus={n_gpus} does not hold it"
            )
        tps, tps_src, upper = found.tokens_per_second_per_gpu, found.source, found.upper_bound
        notes.append(f"{entry.name}: throughput {found.describe()}")
        notes.extend(found.formulas)
    util = _num(p, "util", positive=True)
    months = _num(p, "months", positive=True)
    stream = _num(p, "stream_tps", positive=True)
    if stream is None and found is not None:
        stream = found.stream_tokens_per_second
    try:
        opt = SelfHostOption(
            name=p.values.get("name", f"self-host {entry.name}"),
            model=entry.name,
            gpus_per_replica=n_gpus,
            tokens_per_second_per_gpu=tps,
            throughput_source=tps_src,
            gpu_hourly_usd=_num(p, "hourly"),
            gpu_purchase_usd=_num(p, "purchase"),
            amortize_months=36 if months is None else int(months),
            utilization=0.5 if util is None else util,
            ops_per_month=_num(p, "ops") or 0.0,
            engineering_per_month=_num(p, "eng") or 0.0,
            setup_usd=_num(p, "setup") or 0.0,
            stream_tokens_per_second=stream,
            gpu=gpu.name if gpu else gpu_name,
            throughput_upper_bound=upper,
        )
    except ValueError as exc:
        raise SpecError(str(exc)) from exc
    return opt, notes + _licence_notes(entry)


def _licence_notes(e: CatalogEntry) -> list[str]:
    lic = e.licence
    notes = []
    if lic.commercial_use is False:
        notes.append(f"{e.name}: licence {lic.id} forbids commercial use")
    elif lic.commercial_use is None:
        notes.append(f"{e.name}: licence {lic.id}: commercial use not recorded")
    if isinstance(lic.mau_threshold, int):
        notes.append(
            f"{e.name}: licence {lic.id} needs a separate licence above "
            f"{lic.mau_threshold:,} monthly active users"
        )
    if lic.acceptable_use_policy:
        notes.append(f"{e.name}: licence {lic.id} carries an acceptable-use policy")
    return notes


def describe_keys() -> str:
    """Help text listing every spec key."""
    lines = ["self-host keys: " + "; ".join(f"{k}: {v}" for k, v in _SELF_KEYS.items())]
    lines.append("api keys: " + "; ".join(f"{k}: {v}" for k, v in _API_KEYS.items()))
    return "\n".join(lines)
