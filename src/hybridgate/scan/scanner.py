"""The scanner: detectors compiled once, run over one shared view per text.

``Scanner.scan`` is pure and thread-safe: every per-call structure lives in
a :class:`~hybridgate.scan.text.TextView` created for that call. A detector
that raises makes the result *unknown* (``complete=False``), never clean;
the other detectors' findings are still returned so redaction can use them.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import phonenumbers

from hybridgate.errors import ConfigError
from hybridgate.scan.contact import EmailDetector, Ipv6Detector, PhoneDetector
from hybridgate.scan.encoded import encoded_run_findings
from hybridgate.scan.findings import DataClass, Finding, ScanResult
from hybridgate.scan.health import DobDetector, MrnDetector
from hybridgate.scan.normalize import Normalized, normalize
from hybridgate.scan.numbers import (
    CardDetector,
    IbanDetector,
    IdDetector,
    IdSpec,
    Ipv4Detector,
    NinoDetector,
    default_id_specs,
)
from hybridgate.scan.secrets import (
    SECRET_TRIGGERS,
    AuthorizationDetector,
    ConnectionStringDetector,
    GenericSecretDetector,
    JwtDetector,
    PrivateKeyDetector,
    SecretFormatDetector,
)
from hybridgate.scan.terms import TermDetector, load_terms_file
from hybridgate.scan.text import Lexicon, TextView, lower_same_length

if TYPE_CHECKING:  # config imports the policy schema, which imports scan.findings
    from hybridgate.config import ScannerConfig


class Detector(Protocol):
    """One detector over the shared per-text view."""

    name: str

    def detect(self, view: TextView) -> Iterable[Finding]: ...


@runtime_checkable
class Recognizer(Protocol):
    """An optional plug-in (e.g. an NER model for names and addresses).

    It sees the raw text and returns findings with character offsets into
    it; it is run like a built-in detector, so if it raises the scan is
    incomplete rather than clean.
    """

    name: str

    def recognize(self, text: str) -> Iterable[Finding]: ...


class _PluginDetector:
    def __init__(self, plugin: Recognizer) -> None:
        self.name = plugin.name
        self._plugin = plugin

    def detect(self, view: TextView) -> list[Finding]:
        n = len(view.text)
        out: list[Finding] = []
        for f in self._plugin.recognize(view.text):
            if not isinstance(f, Finding) or not (0 <= f.start < f.end <= n):
                raise ValueError(f"plug-in {self.name} returned an invalid finding")
            out.append(f)
        return out


_SURROGATE = re.compile("[\ud800-\udfff]")
_WORD = re.compile(r"[a-z_]*")


@dataclass(frozen=True, slots=True)
class Analysis:
    """One text's scan with the view it ran on.

    ``result`` holds findings in raw offsets (what redaction masks);
    ``norm_findings`` the same findings in normalized offsets, so a caller can
    read the value as detected (``view.text[f.start:f.end]``) and look for it
    elsewhere in the request.
    """

    result: ScanResult
    view: Normalized
    norm_findings: tuple[Finding, ...]
    #: ``view.text`` lower-cased, same length (what the request-wide sweep reads).
    lower: str = ""
    #: Per-text work the sweep derives lazily (the digit view), kept with the
    #: analysis so a cached text never recomputes it. Deterministic, so a race
    #: between two threads only computes the same value twice.
    memo: dict[str, object] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Scanner:
    detectors: tuple[Detector, ...]
    lexicon: Lexicon
    #: Decode base64/hex runs and scan what they hold (off only inside such a scan).
    decode_runs: bool = True
    #: Skip detectors that cannot fire on this text (no digit, a short word). Off
    #: only for the reference runs the tests compare against.
    prefilter: bool = True

    @property
    def detector_names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.detectors)

    def scan(self, text: str) -> ScanResult:
        return self.analyze(text).result

    @cached_property
    def word_detectors(self) -> tuple[Detector, ...]:
        """The detectors that can fire on a short lower-case word (terms, plug-ins)."""
        return tuple(d for d in self.detectors if isinstance(d, TermDetector | _PluginDetector))

    @cached_property
    def digitless_detectors(self) -> tuple[Detector, ...]:
        """The detectors that can fire on a text without an ASCII digit."""
        return tuple(d for d in self.detectors if not getattr(d, "digits_required", False))

    def _detectors_for(self, word: bool, view: TextView) -> tuple[Detector, ...]:
        """The one prefilter: which detectors could find anything in this text at all."""
        if not self.prefilter:
            return self.detectors
        if word:
            return self.word_detectors
        # Number detectors search the shape string, where every ASCII digit is "0"
        # (the normalized view has only ASCII digits).
        if "0" not in view.shape:
            return self.digitless_detectors
        return self.detectors

    def analyze(self, text: str) -> Analysis:
        """Normalize, detect on the normalized (and decoded) view, map spans to raw."""
        if not isinstance(text, str):
            res = ScanResult(complete=False, errors=("invalid_input: not a string",))
            return Analysis(res, Normalized("", ""), ())
        errors: list[str] = []
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            # Lone surrogates: scan a same-length repaired copy, but the
            # result stays unknown because the text is not what was sent.
            errors.append("undecodable_input")
            text = _SURROGATE.sub("\ufffd", text)
        try:
            norm = normalize(text)
            view = TextView(norm.text, self.lexicon)
        except Exception as exc:  # fail closed: the whole result is unknown
            res = ScanResult(complete=False, errors=(f"prepare: {type(exc).__name__}",))
            return Analysis(res, Normalized(text, text), (), lower_same_length(text))
        findings: list[Finding] = []
        # A short word of a-z and "_" ("user", "content", "tool_calls") holds no
        # digits, "@", "=", ":" or case mix, so only terms and plug-ins can match it
        # (and it is no base64 run: 12+ lower-case letters are read as a word).
        word = self.prefilter and len(text) <= 16 and _WORD.fullmatch(text) is not None
        for det in self._detectors_for(word, view):
            try:
                findings.extend(det.detect(view))
            except Exception as exc:  # fail closed: recorded, result marked incomplete
                errors.append(f"{det.name}: {type(exc).__name__}")
        if self.decode_runs and not word:
            try:
                findings.extend(encoded_run_findings(self._inner, norm.text))
            except Exception as exc:  # fail closed
                errors.append(f"encoded_runs: {type(exc).__name__}")
        norm_findings = resolve_overlaps(findings)
        raw = norm_findings if norm.identity else resolve_overlaps(_to_raw(norm, norm_findings))
        return Analysis(
            ScanResult(findings=raw, complete=not errors, errors=tuple(errors)),
            norm,
            norm_findings,
            view.lower,
        )

    @cached_property
    def _inner(self) -> Scanner:
        return Scanner(self.detectors, self.lexicon, decode_runs=False, prefilter=self.prefilter)


def _to_raw(norm: Normalized, findings: Sequence[Finding]) -> list[Finding]:
    out = []
    for f in findings:
        s, e = norm.to_raw(f.start, f.end)
        out.append(replace(f, start=s, end=e))
    return out


def _rank(f: Finding) -> tuple[int, float, int, str, str]:
    return (-(f.end - f.start), -f.confidence, f.start, f.type, f.detector)


def resolve_overlaps(findings: Sequence[Finding]) -> tuple[Finding, ...]:
    """Non-overlapping findings in text order; longer, then more confident, wins.

    The winner keeps the data classes of the findings it displaced in
    ``absorbed``, so the policy still sees them.
    """
    if not findings:
        return ()
    ordered = sorted(findings, key=lambda f: (f.start, f.end))
    out: list[Finding] = []
    cluster: list[Finding] = [ordered[0]]
    cluster_end = ordered[0].end
    for f in ordered[1:]:
        if f.start < cluster_end:
            cluster.append(f)
            cluster_end = max(cluster_end, f.end)
        else:
            out.extend(_resolve_cluster(cluster))
            cluster = [f]
            cluster_end = f.end
    out.extend(_resolve_cluster(cluster))
    return tuple(out)


def _resolve_cluster(cluster: list[Finding]) -> list[Finding]:
    if len(cluster) == 1:
        return cluster
    # Kept findings never overlap, so kept in start order their ends are ordered
    # too: the ones a finding overlaps sit just before where its end would go
    # (found by bisection, so a hostile cluster of thousands stays near linear).
    starts: list[int] = []
    kept: list[Finding] = []
    extra: list[set[DataClass]] = []
    for f in sorted(cluster, key=_rank):
        j = bisect.bisect_left(starts, f.end) - 1
        if j < 0 or kept[j].end <= f.start:
            at = j + 1
            starts.insert(at, f.start)
            kept.insert(at, f)
            extra.insert(at, set(f.absorbed))
            continue
        while j >= 0 and kept[j].end > f.start:
            extra[j].add(f.data_class)
            extra[j].update(f.absorbed)
            j -= 1
    result = []
    for f, classes in zip(kept, extra, strict=True):
        classes.discard(f.data_class)
        absorbed = tuple(sorted(classes, key=lambda c: c.value))
        if absorbed != f.absorbed:
            f = Finding(f.type, f.data_class, f.start, f.end, f.confidence, f.detector, absorbed)
        result.append(f)
    return sorted(result, key=lambda f: (f.start, f.end))


def builtin_detector_names() -> tuple[str, ...]:
    return (
        "credit_card", "iban", "us_ssn", "uk_nhs", "us_bank_routing", "uk_nino", "email",
        "phone", "ip_address", "ipv6_address", "secret_formats", "private_key", "jwt",
        "connection_string", "generic_secret", "http_authorization", "medical_record_number",
        "date_of_birth", "org_terms",
    )  # fmt: skip


def build_scanner(
    cfg: ScannerConfig,
    *,
    plugins: Sequence[Recognizer] = (),
    id_specs: Sequence[IdSpec] = (),
) -> Scanner:
    """Compile every detector once. Bad configuration is a :class:`ConfigError`.

    ``plugins`` adds recognizers (e.g. NER for names/addresses; none by
    default); ``id_specs`` adds national identifier formats for more locales.
    """
    for region in cfg.phone_regions:
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ConfigError(f"scanner.phone_regions: unknown region {region!r}")
    terms = list(cfg.terms)
    if cfg.terms_file:
        terms.extend(load_terms_file(cfg.terms_file))
    specs = [*default_id_specs(), *id_specs]
    detectors: list[Detector] = [
        CardDetector(),
        IbanDetector(),
        *(IdDetector(s) for s in specs),
        NinoDetector(),
        EmailDetector(),
        PhoneDetector(cfg.phone_regions),
        Ipv4Detector(),
        Ipv6Detector(),
        SecretFormatDetector(),
        PrivateKeyDetector(),
        JwtDetector(),
        ConnectionStringDetector(),
        GenericSecretDetector(),
        AuthorizationDetector(),
        MrnDetector(),
        DobDetector(),
        TermDetector(terms),
        *(_PluginDetector(p) for p in plugins),
    ]
    names = [d.name for d in detectors]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"scanner: duplicate detector names: {', '.join(dupes)}")
    unknown = sorted(set(cfg.disabled) - set(names))
    if unknown:
        raise ConfigError(
            f"scanner.disabled: unknown detector(s) {', '.join(unknown)}; known: {', '.join(names)}"
        )
    detectors = [d for d in detectors if d.name not in set(cfg.disabled)]
    extra_keywords = {w: s.category for s in specs for w in s.context_words if s.category}
    heads = [h for d in detectors if isinstance(d, TermDetector) and d.heads for h in d.heads]
    lexicon = Lexicon.build(SECRET_TRIGGERS, extra_keywords, heads)
    return Scanner(detectors=tuple(detectors), lexicon=lexicon)
