"""Spellings: every ordinary spelling of a value is found and masked on the raw text.

The generated corpus (``hybridgate.scan.variants``) drives these tests, and
hypothesis composes new spellings from the same parts (separators, digit
systems, invisible characters, encodings). "Found" means: after masking
the reported raw spans, the value can no longer be read, verbatim,
normalized or decoded, and the findings carry the value's data class.
"""

from __future__ import annotations

import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hybridgate.config import ScannerConfig
from hybridgate.scan import Scanner, build_scanner
from hybridgate.scan.normalize import CHAR_RULES, normalize, normalize_char
from hybridgate.scan.synth import _luhn_complete
from hybridgate.scan.variants import (
    ADVERSARIAL,
    DIGIT_ZEROS,
    INVISIBLES,
    ORDINARY,
    SEPARATORS,
    Variant,
    exposed,
    hard_negatives,
    org_terms,
    variant_corpus,
)


@pytest.fixture(scope="module")
def sc() -> Scanner:
    return build_scanner(ScannerConfig(terms=org_terms()))


def masked(scanner: Scanner, text: str) -> tuple[str, set[str]]:
    res = scanner.scan(text)
    assert res.complete, res.errors
    out, pos = [], 0
    for f in res.findings:
        out += [text[pos : f.start], f"<{f.type}>"]
        pos = f.end
    out.append(text[pos:])
    classes = {f.data_class.value for f in res.findings}
    classes |= {c.value for f in res.findings for c in f.absorbed}
    return "".join(out), classes


CORPUS = variant_corpus(random.Random(20261204), values_per_kind=1)


@pytest.mark.parametrize(
    "v", [v for v in CORPUS if v.family == ORDINARY], ids=lambda v: f"{v.kind}-{v.spelling}"
)
def test_every_ordinary_spelling_is_masked(sc: Scanner, v: Variant) -> None:
    text, classes = masked(sc, v.prompt)
    assert not exposed(text, v.forbidden), (v.spelling, text)
    assert v.data_class.value in classes


ADVERSARIAL_CAUGHT = {
    ("card", "per_digit_space"),
    ("card", "per_digit_dash"),
    ("card", "zwsp_every_char"),
    ("card", "percent"),
    ("card", "base64"),
    ("card", "hex"),
    ("aws_key", "homoglyphs"),
    ("aws_key", "zwsp_every_char"),
    ("aws_key", "base64"),
    ("term", "homoglyphs"),
    ("term", "zwsp_every_char"),
    ("term", "base64"),
    ("email", "homoglyphs"),
    ("email", "base64"),
    ("iban", "base64"),
    ("ssn", "base64"),
    ("phone", "base64"),
}


@pytest.mark.parametrize(
    "v",
    [v for v in CORPUS if (v.kind, v.spelling) in ADVERSARIAL_CAUGHT],
    ids=lambda v: f"{v.kind}-{v.spelling}",
)
def test_cheap_adversarial_spellings_are_masked(sc: Scanner, v: Variant) -> None:
    assert v.family == ADVERSARIAL
    text, classes = masked(sc, v.prompt)
    assert not exposed(text, v.forbidden), (v.spelling, text)
    assert v.data_class.value in classes


def test_out_of_scope_adversarial_spellings_are_known(sc: Scanner) -> None:
    """What is documented as out of scope really is missed (the docs stay true)."""
    missed = set()
    for v in CORPUS:
        if v.family != ADVERSARIAL:
            continue
        text, _ = masked(sc, v.prompt)
        if exposed(text, v.forbidden):
            missed.add((v.kind, v.spelling))
    assert missed <= {("ssn", "per_digit_space"), ("env_key", "base64_unlabelled")}


def test_hard_negatives_are_not_flagged(sc: Scanner) -> None:
    docs = hard_negatives(random.Random(11), per_kind=15)
    flagged = [(kind, text) for kind, text in docs if sc.scan(text).findings]
    # The one known cost: four 4-digit numbers one per line read like a card
    # written over four lines (the price of catching line-wrapped cards); only
    # those that pass prefix + Luhn, a few percent.
    assert {kind for kind, _ in flagged} <= {"table_digits"}
    tables = [t for kind, t in hard_negatives(random.Random(12), 200) if kind == "table_digits"]
    assert sum(1 for t in tables if sc.scan(t).findings) <= 0.08 * len(tables)


# ------------------------------------------------------------- hypothesis

_card_prefix = st.sampled_from(["4", "51", "55", "2221", "6011", "37"])


@st.composite
def card_spelling(draw: st.DrawFn) -> tuple[str, str]:
    prefix = draw(_card_prefix)
    length = 15 if prefix == "37" else 16
    card = _luhn_complete(random.Random(draw(st.integers(0, 10**6))), prefix, length)
    sizes = [4, 6, 5] if length == 15 else [4, 4, 4, 4]
    groups, i = [], 0
    for n in sizes:
        groups.append(card[i : i + n])
        i += n
    sep = draw(st.sampled_from(sorted(SEPARATORS.values())))
    written = sep.join(groups)
    zero = draw(st.sampled_from([None, *DIGIT_ZEROS.values()]))
    if zero is not None:
        written = "".join(chr(zero + int(c)) if c.isdigit() else c for c in written)
    if draw(st.booleans()):
        inv = draw(st.sampled_from(sorted(INVISIBLES.values())))
        k = draw(st.integers(1, len(written) - 1))
        written = written[:k] + inv + written[k:]
    return card, written


_WRAPS = st.sampled_from(
    [
        "{v}",
        "Card: {v}",
        "paid with {v}.",
        "ID{v} ok",
        "({v})",
        '"{v}"',
        "x\n{v}\ny",
        "{v}.Thanks",
        "refund {v}, exp 09/28",
    ]
)


@settings(max_examples=150, deadline=None)
@given(card_spelling(), _WRAPS)
def test_generated_card_spellings(sc: Scanner, spelled: tuple[str, str], wrap: str) -> None:
    card, written = spelled
    text, classes = masked(sc, wrap.format(v=written))
    assert not exposed(text, (card,)), text
    assert "financial" in classes


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(org_terms()),
    st.sampled_from([" ", "\n", "\r\n", "  ", "-", "_", "\u00a0", "\t", " \u200b"]),
    st.sampled_from(["{v}", "About {v}.", "{v}'s budget", "re: {v}\n"]),
    st.booleans(),
)
def test_generated_term_spellings(
    sc: Scanner, term: str, joiner: str, wrap: str, upper: bool
) -> None:
    a, b = term.split(" ")
    written = a + joiner + b
    if upper:
        written = written.upper()
    text, classes = masked(sc, wrap.format(v=written))
    assert not exposed(text, (term,)), text
    assert "org_confidential" in classes


# ------------------------------------------------------------ normalization


def test_offset_map_masks_the_exact_raw_span(sc: Scanner) -> None:
    raw = "pay \u00ad4111&#32;1111\u20091111%201111\u200b now"
    res = sc.scan(raw)
    (f,) = res.findings
    assert raw[f.start : f.end] == "4111&#32;1111\u20091111%201111"


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_normalized_spans_map_inside_the_raw_text(text: str) -> None:
    norm = normalize(text)
    n = len(norm.text)
    for a in range(n):
        for b in (a + 1, n):
            s, e = norm.to_raw(a, b)
            assert 0 <= s < e <= len(text)


def test_char_rules_are_idempotent_and_one_line_each() -> None:
    assert len(CHAR_RULES) >= 6
    for c in ["\uff14", "\u0664", "\u096a", "\u00ad", "\u200b", "\u3000", "\u2013", "\u0410"]:
        once = normalize_char(c)
        assert "".join(normalize_char(x) for x in once) == once
    assert normalize_char("\u0664") == "4"  # Arabic-Indic four
    assert normalize_char("\u00ad") == ""  # soft hyphen (Cf)
    assert normalize_char("\u2212") == "-"  # minus sign
    assert normalize_char("\u202f") == " "  # narrow no-break space
    assert unicodedata.category("\u2060") == "Cf" and normalize_char("\u2060") == ""


def test_ascii_text_is_not_copied_through_the_offset_map() -> None:
    norm = normalize("plain ASCII text\twith a tab")
    assert norm.identity and norm.text == "plain ASCII text with a tab"
