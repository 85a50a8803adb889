"""A generated corpus of spellings: how people (and attackers) write the same value.

Each :class:`Variant` is one sensitive value written one way, inside a short
prompt. *Ordinary* spellings are what copy-paste, keyboards, locales and
word processors produce (no-break and thin spaces, en dashes, fullwidth or
Arabic-Indic digits, soft hyphens, line wraps, dots and slashes between
groups, values glued to a word, HTML entities and ``\\u`` escapes from
tooling); *adversarial* spellings are what someone hiding a value would
write (homoglyphs, zero-width characters between every character, one
digit at a time, base64 or hex with no label). The scanner must catch every
ordinary spelling; adversarial ones are reported separately.

Hard negatives (:func:`hard_negatives`) are texts that look like values and
are not: order numbers, timestamps, UUIDs, git SHAs, hashes, base64 of
harmless text, ``.env`` lines without secrets. Everything derives from the
``random.Random`` passed in, so a seed reproduces the corpus exactly. Used
by the tests (scan and gateway level) and ``benchmarks/scan_bench.py``.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from hybridgate.scan.findings import DataClass
from hybridgate.scan.synth import (
    _luhn_complete,
    _rand,
    _uuid,
    iban,
    ssn,
)

ORDINARY = "ordinary"
ADVERSARIAL = "adversarial"

#: Digit systems ``str.isdecimal`` knows, as offsets from their zero.
DIGIT_ZEROS = {
    "fullwidth": 0xFF10,
    "arabic_indic": 0x0660,
    "persian": 0x06F0,
    "devanagari": 0x0966,
    "bengali": 0x09E6,
    "thai": 0x0E50,
}
#: Separators people put between digit groups.
SEPARATORS = {
    "space": " ",
    "dash": "-",
    "dot": ".",
    "slash": "/",
    "underscore": "_",
    "nbsp": "\u00a0",
    "narrow_nbsp": "\u202f",
    "thin_space": "\u2009",
    "ideographic_space": "\u3000",
    "figure_space": "\u2007",
    "tab": "\t",
    "newline": "\n",
    "crlf": "\r\n",
    "double_space": "  ",
    "en_dash": "\u2013",
    "minus": "\u2212",
    "non_breaking_hyphen": "\u2011",
    "soft_hyphen": "\u00ad",
    "zwsp_space": " \u200b",
}
#: Format characters that copy-paste leaves inside a value.
INVISIBLES = {"soft_hyphen": "\u00ad", "zwsp": "\u200b", "zwj": "\u200d", "word_joiner": "\u2060"}
_HOMOGLYPHS = {"A": "А", "B": "В", "E": "Е", "K": "К", "M": "М", "O": "О", "P": "Р", "C": "С",
               "T": "Т", "X": "Х", "a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "i": "і",
               "j": "ј", "s": "ѕ", "x": "х", "y": "у", "I": "І"}  # fmt: skip


@dataclass(frozen=True)
class Variant:
    """One value, spelled one way, in one prompt."""

    kind: str  # card, iban, ssn, email, phone, term, aws_key, password, basic_auth ...
    data_class: DataClass
    value: str  # the canonical value
    spelling: str  # name of the spelling
    family: str  # ORDINARY or ADVERSARIAL
    written: str  # the value as written
    prompt: str  # the prompt carrying it
    #: What must never appear in an external upstream's recording (canonical forms).
    forbidden: tuple[str, ...]


def _digits_as(value: str, zero: int) -> str:
    return "".join(chr(zero + int(c)) if c.isdigit() else c for c in value)


def _groups(value: str, size: int) -> list[str]:
    return [value[i : i + size] for i in range(0, len(value), size)]


def _homoglyph(value: str) -> str:
    return "".join(_HOMOGLYPHS.get(c, c) for c in value)


def _between_every(value: str, sep: str) -> str:
    return sep.join(value)


def _entities(value: str) -> str:
    return "".join(f"&#{ord(c)};" if c.isalnum() and i % 2 == 0 else c for i, c in enumerate(value))


def _percent(value: str) -> str:
    return "".join(f"%{b:02X}" for b in value.encode())


def _u_escapes(value: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in value)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _hex(text: str) -> str:
    return text.encode().hex()


def _digit_spellings(compact: str, group: int) -> Iterator[tuple[str, str, str]]:
    """(spelling, family, written) for a grouped digit string such as a card."""
    groups = _groups(compact, group)
    for name, sep in SEPARATORS.items():
        yield f"sep_{name}", ORDINARY, sep.join(groups)
    for name, zero in DIGIT_ZEROS.items():
        yield f"digits_{name}", ORDINARY, _digits_as(" ".join(groups), zero)
    for name, ch in INVISIBLES.items():
        yield f"inside_{name}", ORDINARY, ch.join(groups)
    yield "compact", ORDINARY, compact
    yield "glued_left", ORDINARY, "ID" + compact
    yield "glued_right", ORDINARY, compact + ".Thanks"
    yield "entities", ORDINARY, _entities(" ".join(groups))
    yield "u_escapes", ORDINARY, _u_escapes(" ".join(groups))
    yield "per_digit_space", ADVERSARIAL, _between_every(compact, " ")
    yield "per_digit_dash", ADVERSARIAL, _between_every(compact, "-")
    yield "zwsp_every_char", ADVERSARIAL, _between_every(compact, "\u200b")
    yield "percent", ADVERSARIAL, _percent(" ".join(groups))
    yield "base64", ADVERSARIAL, _b64(" ".join(groups))
    yield "hex", ADVERSARIAL, _hex(" ".join(groups))


def _text_spellings(value: str) -> Iterator[tuple[str, str, str]]:
    """(spelling, family, written) for a word-like value (e-mail, term, token)."""
    yield "plain", ORDINARY, value
    yield "upper", ORDINARY, value.upper() if "@" in value or " " in value else value
    yield (
        "fullwidth",
        ORDINARY,
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value),
    )
    for name, ch in INVISIBLES.items():
        mid = len(value) // 2
        yield f"inside_{name}", ORDINARY, value[:mid] + ch + value[mid:]
    yield "entities", ORDINARY, _entities(value)
    yield "u_escapes", ORDINARY, _u_escapes(value)
    yield "homoglyphs", ADVERSARIAL, _homoglyph(value)
    yield "zwsp_every_char", ADVERSARIAL, _between_every(value, "\u200b")
    yield "percent", ADVERSARIAL, _percent(value)
    yield "base64", ADVERSARIAL, _b64(value)
    yield "hex", ADVERSARIAL, _hex(value)


def _compact(value: str) -> str:
    return "".join(c for c in value if c.isalnum())


def _make(
    kind: str, cls: DataClass, value: str, template: str, spellings: Iterator[tuple[str, str, str]]
) -> Iterator[Variant]:
    forbidden = tuple(dict.fromkeys([value, _compact(value)]))
    for spelling, family, written in spellings:
        yield Variant(
            kind, cls, value, spelling, family, written, template.format(v=written), forbidden
        )


def _card(rnd: random.Random) -> str:
    prefix = rnd.choice(["4", "51", "55", "2221", "6011"])
    return _luhn_complete(rnd, prefix, 16)


def _iban_compact(rnd: random.Random) -> str:
    return iban(rnd).replace(" ", "")


_TERM_WORDS = ("Bluebird", "Nimbus", "Kestrel", "Falcon")
_TEMPLATES: dict[str, str] = {
    "card": "Customer paid with {v} and wants a refund.",
    "iban": "Please wire the deposit to {v} before Friday.",
    "ssn": "Applicant SSN: {v}. Verify employment.",
    "email": "Forward the invoice to {v} and cc finance.",
    "phone": "Call the client back, phone: {v} after 3pm.",
    "term": "Status update on {v} for the board.",
    "aws_key": "Deploy used {v} yesterday.",
}


def org_terms() -> list[str]:
    """The org terms the corpus uses (configure the scanner with these)."""
    return [f"Project {w}" for w in _TERM_WORDS]


def variant_corpus(rnd: random.Random, values_per_kind: int = 2) -> list[Variant]:
    """Every spelling of ``values_per_kind`` fresh values of each kind."""
    out: list[Variant] = []
    for _ in range(values_per_kind):
        card = _card(rnd)
        out += _make(
            "card", DataClass.FINANCIAL, card, _TEMPLATES["card"], _digit_spellings(card, 4)
        )
        ib = _iban_compact(rnd)
        out += _make("iban", DataClass.FINANCIAL, ib, _TEMPLATES["iban"], _iban_spellings(ib))
        sn = ssn(rnd).replace("-", "")
        out += _make("ssn", DataClass.GOVERNMENT_ID, sn, _TEMPLATES["ssn"], _ssn_spellings(sn))
        user = rnd.choice(["jane.doe", "zoë.müller", "k_tanaka", "li.wei+billing", "josé"])
        dom = rnd.choice(["example.com", "bücher.de", "corp.co.uk", "mail.example.org"])
        em = f"{user}{rnd.randint(1, 99)}@{dom}"
        out += _make("email", DataClass.CONTACT, em, _TEMPLATES["email"], _email_spellings(em))
        ph = f"+44 20 7946 {rnd.randint(0, 9999):04d}"
        out += _make("phone", DataClass.CONTACT, ph, _TEMPLATES["phone"], _phone_spellings(ph))
        term = f"Project {rnd.choice(_TERM_WORDS)}"
        out += _make(
            "term", DataClass.ORG_CONFIDENTIAL, term, _TEMPLATES["term"], _term_spellings(term)
        )
        key = "AKIA" + _rand(rnd, string.ascii_uppercase + "234567", 16)
        out += _make("aws_key", DataClass.SECRET, key, _TEMPLATES["aws_key"], _text_spellings(key))
        out += list(_secret_variants(rnd))
    return out


def _iban_spellings(compact: str) -> Iterator[tuple[str, str, str]]:
    groups = _groups(compact, 4)
    for name in ("space", "dash", "dot", "nbsp", "thin_space", "tab", "newline", "double_space"):
        yield f"sep_{name}", ORDINARY, SEPARATORS[name].join(groups)
    yield "compact", ORDINARY, compact
    yield "lower", ORDINARY, " ".join(groups).lower()
    yield "glued_left", ORDINARY, "IBAN" + compact
    yield "inside_soft_hyphen", ORDINARY, "\u00ad".join(groups)
    yield "fullwidth_digits", ORDINARY, _digits_as(" ".join(groups), DIGIT_ZEROS["fullwidth"])
    yield "base64", ADVERSARIAL, _b64(" ".join(groups))
    yield "zwsp_every_char", ADVERSARIAL, _between_every(compact, "\u200b")


def _ssn_spellings(compact: str) -> Iterator[tuple[str, str, str]]:
    parts = [compact[:3], compact[3:5], compact[5:]]
    for name in ("dash", "space", "dot", "nbsp", "en_dash", "minus", "non_breaking_hyphen"):
        yield f"sep_{name}", ORDINARY, SEPARATORS[name].join(parts)
    for name, zero in DIGIT_ZEROS.items():
        yield f"digits_{name}", ORDINARY, _digits_as("-".join(parts), zero)
    yield "compact", ORDINARY, compact
    yield "inside_zwsp", ORDINARY, "\u200b-".join(parts)
    yield "u_escapes", ORDINARY, _u_escapes("-".join(parts))
    yield "per_digit_space", ADVERSARIAL, _between_every(compact, " ")
    yield "base64", ADVERSARIAL, _b64("-".join(parts))


def _email_spellings(value: str) -> Iterator[tuple[str, str, str]]:
    yield from _text_spellings(value)
    yield "at_entity", ORDINARY, value.replace("@", "&#64;")
    yield "at_percent", ORDINARY, value.replace("@", "%40")
    yield "fullwidth_at", ORDINARY, value.replace("@", "\uff20")


def _phone_spellings(value: str) -> Iterator[tuple[str, str, str]]:
    parts = value.split(" ")
    for name in ("space", "dash", "dot", "nbsp", "thin_space", "en_dash"):
        yield f"sep_{name}", ORDINARY, parts[0] + " " + SEPARATORS[name].join(parts[1:])
    yield "fullwidth_digits", ORDINARY, _digits_as(value, DIGIT_ZEROS["fullwidth"])
    yield "arabic_digits", ORDINARY, _digits_as(value, DIGIT_ZEROS["arabic_indic"])
    yield "compact", ORDINARY, value.replace(" ", "")
    yield "base64", ADVERSARIAL, _b64(value)


def _term_spellings(value: str) -> Iterator[tuple[str, str, str]]:
    a, b = value.split(" ", 1)
    yield "plain", ORDINARY, value
    yield "lower", ORDINARY, value.lower()
    yield "upper", ORDINARY, value.upper()
    for name in ("newline", "crlf", "double_space", "dash", "underscore", "nbsp", "tab"):
        yield f"sep_{name}", ORDINARY, a + SEPARATORS[name] + b
    yield "camel", ORDINARY, a + b
    yield "inside_soft_hyphen", ORDINARY, a + " " + b[:3] + "\u00ad" + b[3:]
    yield "homoglyphs", ADVERSARIAL, _homoglyph(value)
    yield "zwsp_every_char", ADVERSARIAL, _between_every(value, "\u200b")
    yield "base64", ADVERSARIAL, _b64(f"{value} launches in May")


def _secret_variants(rnd: random.Random) -> Iterator[Variant]:
    """Credentials with no vendor prefix: the name or the scheme is the evidence."""
    pw = rnd.choice(["hunter2", "S3cure!pass", "tr0ub4dor&3", "Winter2024!"])
    token = _rand(rnd, string.ascii_letters + string.digits, 32)
    user = rnd.choice(["deploy", "admin", "ci-bot"])
    basic = _b64(f"{user}:{pw}")
    cases: list[tuple[str, str, str, str]] = [
        ("password", pw, "password_colon", f"password: {pw}"),
        ("password", pw, "password_is", f"my password is {pw}"),
        ("password", pw, "pwd_equals", f"pwd={pw}"),
        ("basic_auth", basic, "authorization_basic", f"Authorization: Basic {basic}"),
        ("bearer", token, "authorization_bearer", f"Authorization: Bearer {token}"),
        ("env_key", token, "dotenv_key", f"DB_KEY={token}"),
        ("env_key", token, "dotenv_unnamed", f"PAYMENTS_WEBHOOK={token}"),
        ("env_key", token, "ci_log", f"Run export DEPLOY_TOKEN={token}"),
        ("env_key", token, "yaml_secret", f"client_secret: '{token}'"),
    ]
    for kind, value, spelling, written in cases:
        yield Variant(
            kind,
            DataClass.SECRET,
            value,
            spelling,
            ORDINARY,
            written,
            f"Here is the config:\n{written}\nWhy does login fail?",
            (value,),
        )
    yield Variant(
        "env_key",
        DataClass.SECRET,
        token,
        "base64_unlabelled",
        ADVERSARIAL,
        _b64(token),
        f"Decode this for me: {_b64(token)}",
        (token,),
    )


# --------------------------------------------------------------- hard negatives

_B64_HARMLESS = (
    "The quick brown fox jumps over the lazy dog.",
    "Meeting moved to Thursday afternoon.",
    "version: 2\nservices:\n  web:\n    image: nginx",
)

#: (kind, generator) for texts that look sensitive and are not.
HARD_NEGATIVES: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    ("uuid", lambda r: f"Request id {_uuid(r)} failed with a 502."),
    ("git_sha", lambda r: f"Revert commit {_rand(r, '0123456789abcdef', 40)} please."),
    ("sha256", lambda r: f"sha256:{_rand(r, '0123456789abcdef', 64)} is the digest."),
    ("ci_sha", lambda r: f"GITHUB_SHA={_rand(r, '0123456789abcdef', 40)}"),
    ("ms_timestamp", lambda r: f"Event at {r.randint(1_600_000_000_000, 1_800_000_000_000)} ms."),
    (
        "iso_timestamp",
        lambda r: f"2024-0{r.randint(1, 9)}-1{r.randint(0, 9)}T10:2{r.randint(0, 9)}:00Z",
    ),
    ("order_number", lambda r: f"Order #{r.randint(100, 999)}-{r.randint(10**6, 10**7 - 1)}"),
    ("order_spaced", lambda r: f"Invoice {r.randint(1000, 9999)} {r.randint(1000, 9999)} paid."),
    ("base64_text", lambda r: f"payload: {_b64(r.choice(_B64_HARMLESS))}"),
    ("hex_bytes", lambda r: f"bytes {_rand(r, '0123456789abcdef', 32)}"),
    ("env_plain", lambda r: f"LOG_LEVEL=debug\nPORT={r.randint(1024, 65535)}\nWORKERS=4"),
    ("env_ref", lambda r: "API_KEY=${API_KEY}\nDB_PASSWORD=<set me>"),
    ("key_prose", lambda r: "The primary key: user_id, the sort key: created_at."),
    ("password_prose", lambda r: "Password: must be at least 12 characters long."),
    ("monkey", lambda r: "monkey = banana_split; donkey = carrot_cake"),
    ("table_digits", lambda r: "\n".join(str(r.randint(1000, 9999)) for _ in range(4))),
    ("version", lambda r: f"Upgrade to v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 50)}."),
    ("price_list", lambda r: f"Prices: {r.randint(10, 99)}.99, {r.randint(10, 99)}.50 and 5.00"),
    ("cyrillic_prose", lambda r: "Привет, как дела? Сергей отправил отчёт."),
    ("math", lambda r: f"x = {r.randint(1000, 9999)} * {r.randint(1000, 9999)} / 12"),
    ("phone_like_id", lambda r: f"Ticket {r.randint(100, 999)}-{r.randint(1000, 9999)} closed."),
)


def hard_negatives(rnd: random.Random, per_kind: int = 20) -> list[tuple[str, str]]:
    """(kind, text) pairs that must not be flagged."""
    return [(kind, gen(rnd)) for _ in range(per_kind) for kind, gen in HARD_NEGATIVES]


# ------------------------------------------------------------------ checking


def _compact_view(text: str) -> str:
    return "".join(c for c in text if c.isalnum())


def exposed(sent: str, forbidden: tuple[str, ...]) -> list[str]:
    """Which forbidden values can still be read in ``sent``: verbatim, normalized or decoded.

    ``sent`` is normalized (and decoded) as the scanner would read it;
    base64/hex runs are decoded; then each value is looked for as written,
    case-folded, and with everything but letters and digits removed.
    """
    from hybridgate.scan.encoded import _B64_RUN, decode_run
    from hybridgate.scan.normalize import normalize

    views = [sent, normalize(sent).text]
    for m in _B64_RUN.finditer(views[1]):
        dec = decode_run(m.group())
        if dec is not None:
            views.append(normalize(dec).text)
    folded = [v.casefold() for v in views]
    compact = [_compact_view(v) for v in folded]
    out = []
    for value in forbidden:
        v = normalize(value).text.casefold()
        c = _compact_view(v)
        if any(v in f for f in folded) or (len(c) >= 6 and any(c in x for x in compact)):
            out.append(value)
    return out
