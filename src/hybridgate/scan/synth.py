"""Deterministic synthetic prompts for measuring the scanner.

Positives carry one identifier or secret with a valid checksum (generated,
never real); hard negatives carry something that *looks* like one: UUIDs,
digests, timestamps, ISBNs, order and tracking numbers, Luhn-invalid cards,
IBANs with wrong check digits, impossible SSNs. Used by
``benchmarks/scan_bench.py`` and the tests; everything derives from the
``random.Random`` passed in, so a seed reproduces the corpus exactly.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

from hybridgate.scan.validators import aba_ok, iban_ok, luhn_ok, nhs_ok

_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits

FILLER = (
    "Can you help me draft a reply to this customer?",
    "Please summarize the thread below in two sentences.",
    "Rewrite this so it sounds friendlier.",
    "The migration ran overnight and finished without warnings.",
    "We agreed to revisit the pricing model next quarter.",
    "Translate the following note into German.",
    "Here is the context you asked for.",
    "Thanks again for the quick turnaround on this.",
)


@dataclass(frozen=True)
class Doc:
    text: str
    type: str | None = None  # gold entity type (positives)
    start: int = 0
    end: int = 0
    negative: str = ""  # hard-negative kind
    term: str | None = None


def _digits(rnd: random.Random, n: int) -> str:
    return "".join(rnd.choice(string.digits) for _ in range(n))


def _luhn_complete(rnd: random.Random, prefix: str, length: int) -> str:
    body = prefix + _digits(rnd, length - len(prefix) - 1)
    for d in string.digits:
        if luhn_ok(body + d):
            return body + d
    raise AssertionError("unreachable")


def _group(number: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for s in sizes:
        out.append(number[i : i + s])
        i += s
    return sep.join(out)


def card(rnd: random.Random) -> str:
    network = rnd.choice(
        [
            ("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16),
            ("2500", 16), ("34", 15), ("37", 15), ("6011", 16), ("65", 16), ("3530", 16),
            ("3589", 16), ("36", 14), ("62", 16), ("62", 19), ("6759", 12), ("5018", 19),
        ]
    )  # fmt: skip
    prefix, length = network
    number = _luhn_complete(rnd, prefix, length)
    style = rnd.choice(["plain", "space", "dash"])
    if style == "plain":
        return number
    sep = " " if style == "space" else "-"
    if length == 15:
        return _group(number, [4, 6, 5], sep)
    if length == 14:
        return _group(number, [4, 6, 4], sep)
    sizes = [4] * (length // 4) + ([length % 4] if length % 4 else [])
    return _group(number, sizes, sep)


_IBAN_SPECS = {"DE": "n18", "GB": "a4n14", "FR": "n23", "NL": "a4n10", "ES": "n20", "IT": "a1n22",
               "CH": "n17", "BE": "n12", "PL": "n24", "AT": "n16"}  # fmt: skip


def _bban(rnd: random.Random, spec: str) -> str:
    out = ""
    i = 0
    while i < len(spec):
        kind = spec[i]
        j = i + 1
        while j < len(spec) and spec[j].isdigit():
            j += 1
        n = int(spec[i + 1 : j])
        pool = string.ascii_uppercase if kind == "a" else string.digits
        out += "".join(rnd.choice(pool) for _ in range(n))
        i = j
    return out


def iban(rnd: random.Random, *, valid: bool = True) -> str:
    country = rnd.choice(sorted(_IBAN_SPECS))
    bban = _bban(rnd, _IBAN_SPECS[country])
    num = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(num) % 97
    if not valid:
        check = (check + rnd.randint(1, 96)) % 97 or 1
        if iban_ok(f"{country}{check:02d}{bban}"):
            check = (check + 1) % 97
    value = f"{country}{check:02d}{bban}"
    if rnd.random() < 0.5:
        value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
    return value


def ssn(rnd: random.Random) -> str:
    area = rnd.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rnd.randint(1, 99):02d}-{rnd.randint(1, 9999):04d}"


def aba(rnd: random.Random) -> str:
    while True:
        prefix = rnd.choice(["01", "02", "03", "04", "05", "06", "07", "08", "09", "11", "12",
                             "21", "22", "26", "31", "32", "61", "63", "67", "71"])  # fmt: skip
        v = prefix + _digits(rnd, 6)
        for d in string.digits:
            if aba_ok(v + d):
                return v + d


def nhs(rnd: random.Random) -> str:
    while True:
        v = _digits(rnd, 9)
        for d in string.digits:
            if nhs_ok(v + d):
                return f"{v[:3]} {v[3:6]} {v[6:]}{d}"


def nino(rnd: random.Random) -> str:
    first = rnd.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = rnd.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
        first, second = "A", "B"
    d = _digits(rnd, 6)
    return f"{first}{second} {d[:2]} {d[2:4]} {d[4:]} {rnd.choice('ABCD')}"


def email(rnd: random.Random) -> str:
    user = rnd.choice(["jane.doe", "m.schmidt", "ops-team", "k_tanaka", "li.wei+billing"])
    return f"{user}{rnd.randint(1, 99)}@{rnd.choice(['example.com', 'corp.co.uk', 'mail.de'])}"


def phone(rnd: random.Random) -> str:
    kind = rnd.choice(["us1", "us2", "us3", "gb", "gbi", "de", "fr", "fri"])
    area = rnd.choice(["212", "415", "617", "312", "206", "303", "512", "646", "702", "919"])
    line = f"{rnd.randint(200, 999)}-{rnd.randint(0, 9999):04d}"
    if kind == "us1":
        return f"({area}) {line}"
    if kind == "us2":
        return f"{area}-{line}"
    if kind == "us3":
        return f"+1 {area} {line.replace('-', ' ')}"
    if kind == "gb":
        return f"020 7{rnd.randint(100, 999)} {rnd.randint(0, 9999):04d}"
    if kind == "gbi":
        return f"+44 7700 9{rnd.randint(0, 99999):05d}"
    if kind == "de":
        return f"+49 30 {rnd.randint(1000000, 9999999)}"
    if kind == "fr":
        return f"01 {rnd.randint(10, 99)} {rnd.randint(10, 99)} {rnd.randint(10, 99)} 00"
    return f"+33 6 {rnd.randint(10, 99)} {rnd.randint(10, 99)} {rnd.randint(10, 99)} 11"


def ip(rnd: random.Random) -> str:
    if rnd.random() < 0.7:
        return ".".join(str(rnd.randint(1, 254)) for _ in range(4))
    groups = [f"{rnd.randint(0, 0xFFFF):x}" for _ in range(8)]
    return "2001:db8:" + ":".join(groups[2:]) if rnd.random() < 0.5 else "fe80::" + groups[4]


def _rand(rnd: random.Random, pool: str, n: int) -> str:
    return "".join(rnd.choice(pool) for _ in range(n))


def _b64url(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


SECRETS: dict[str, Callable[[random.Random], str]] = {
    "AWS_ACCESS_KEY": lambda r: "AKIA" + _rand(r, string.ascii_uppercase + "234567", 16),
    "GITHUB_TOKEN": lambda r: r.choice(["ghp_", "gho_", "ghs_"]) + _rand(r, _ALNUM, 36),
    "GITLAB_TOKEN": lambda r: "glpat-" + _rand(r, _ALNUM + "_-", 20),
    "SLACK_TOKEN": lambda r: f"xoxb-{_digits(r, 12)}-{_digits(r, 13)}-{_rand(r, _ALNUM, 24)}",
    "STRIPE_KEY": lambda r: "sk_live_" + _rand(r, _ALNUM, 24),
    "OPENAI_API_KEY": lambda r: "sk-proj-" + _rand(r, _ALNUM + "_-", 48),
    "ANTHROPIC_API_KEY": lambda r: "sk-ant-api03-" + _rand(r, _ALNUM + "_-", 93) + "AA",
    "HUGGINGFACE_TOKEN": lambda r: "hf_" + _rand(r, string.ascii_letters, 34),
    "GOOGLE_API_KEY": lambda r: "AIza" + _rand(r, _ALNUM + "_-", 35),
    "JWT": lambda r: ".".join(
        [
            _b64url({"alg": "HS256", "typ": "JWT"}),
            _b64url({"sub": _digits(r, 8), "exp": 1700000000 + r.randint(0, 10**6)}),
            _rand(r, _ALNUM + "_-", 43),
        ]
    ),
    "PRIVATE_KEY": lambda r: (
        "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(_rand(r, _ALNUM + "+/", 64) for _ in range(6))
        + "\n-----END RSA PRIVATE KEY-----"
    ),
}

#: (type, template) — ``{v}`` is the value; each template reads like a real prompt.
TEMPLATES: tuple[tuple[str, Callable[[random.Random], str], str], ...] = (
    ("CREDIT_CARD", card, "Customer paid with {v} and wants a refund for the duplicate charge."),
    ("CREDIT_CARD", card, "Update the billing profile, new card number: {v}, exp 09/28."),
    ("IBAN_CODE", iban, "Please wire the deposit to IBAN {v} before Friday."),
    ("IBAN_CODE", iban, "Her account {v} was debited twice."),
    ("US_SSN", ssn, "Applicant SSN: {v}. Verify employment history."),
    ("US_SSN", ssn, "The form lists {v} as the social security number."),
    ("US_BANK_ROUTING", aba, "Direct deposit: routing number {v}, checking account."),
    ("UK_NHS", nhs, "Patient NHS number {v}, referred to cardiology."),
    ("UK_NINO", nino, "Employee NI number {v} needs to go on the P45."),
    ("EMAIL_ADDRESS", email, "Forward the invoice to {v} and cc finance."),
    ("PHONE_NUMBER", phone, "Call the client back on {v} after 3pm."),
    ("PHONE_NUMBER", phone, "Mobile: {v}"),
    ("IP_ADDRESS", ip, "Requests from {v} are hitting the rate limit."),
    ("MEDICAL_RECORD_NUMBER", lambda r: f"{r.randint(10**6, 10**8)}", "MRN: {v}, admitted."),
    (
        "DATE_OF_BIRTH",
        lambda r: f"{r.randint(1, 12):02d}/{r.randint(1, 28):02d}/{r.randint(1930, 2005)}",
        "Patient DOB: {v}, allergic to penicillin.",
    ),
    (
        "CONNECTION_STRING",
        lambda r: f"postgres://app:{_rand(r, _ALNUM, 14)}@db{r.randint(1, 9)}.internal:5432/prod",
        "The service can't connect with {v} - any idea why?",
    ),
    (
        "GENERIC_SECRET",
        lambda r: _rand(r, _ALNUM, 10) + r.choice("!#%&*") + _rand(r, _ALNUM, 5),
        'config = {{"db_password": "{v}", "pool": 5}}',
    ),
    *(
        (t, gen, f"Why does this fail? export TOKEN={{v}}  # {t.lower()}")
        for t, gen in SECRETS.items()
        if t not in ("PRIVATE_KEY", "JWT")
    ),
    ("JWT", SECRETS["JWT"], "Decode this bearer token for me: {v}"),
    ("PRIVATE_KEY", SECRETS["PRIVATE_KEY"], "Is this key in the right format?\n{v}\nThanks"),
)


def _uuid(r: random.Random) -> str:
    h = _rand(r, "0123456789abcdef", 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _bad_card(r: random.Random) -> str:
    good = _luhn_complete(r, r.choice(["4", "51", "6011"]), 16)
    bad = good[:-1] + str((int(good[-1]) + r.randint(1, 9)) % 10)
    return _group(bad, [4, 4, 4, 4], r.choice([" ", "-"]))


def _isbn13(r: random.Random) -> str:
    body = "978" + _digits(r, 9)
    check = (10 - sum(int(d) * (1 if i % 2 == 0 else 3) for i, d in enumerate(body)) % 10) % 10
    return f"{body[:3]}-{body[3]}-{body[4:7]}-{body[7:12]}-{check}"


def _bad_ssn(r: random.Random) -> str:
    return r.choice(
        [
            f"000-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}",
            f"666-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}",
            f"9{r.randint(0, 99):02d}-{r.randint(1, 99):02d}-{r.randint(1, 9999):04d}",
            f"{r.randint(1, 665):03d}-00-{r.randint(1, 9999):04d}",
            f"{r.randint(1, 665):03d}-{r.randint(1, 99):02d}-0000",
        ]
    )


#: (kind, template) for hard negatives.
NEGATIVES: tuple[tuple[str, Callable[[random.Random], str]], ...] = (
    ("uuid", lambda r: f"Request id {_uuid(r)} failed with a 502."),
    ("git_sha", lambda r: f"Revert commit {_rand(r, '0123456789abcdef', 40)} please."),
    ("short_sha", lambda r: f"Fixed in {_rand(r, '0123456789abcdef', 7)} on main."),
    ("sha256", lambda r: f"sha256:{_rand(r, '0123456789abcdef', 64)} is the image digest."),
    ("ms_timestamp", lambda r: f"Event at {r.randint(1_600_000_000_000, 1_800_000_000_000)} ms."),
    ("unix_timestamp", lambda r: f'{{"ts": {r.randint(1_600_000_000, 1_800_000_000)}}}'),
    ("isbn", lambda r: f"The book (ISBN {_isbn13(r)}) is out of print."),
    ("isbn_bare", lambda r: f"Order the textbook {_isbn13(r)} for class."),
    (
        "order_number",
        lambda r: f"Order #{r.randint(100, 999)}-{_digits(r, 7)}-{_digits(r, 7)} has shipped.",
    ),
    (
        "order_number_luhn",
        lambda r: f"Order number {_luhn_complete(r, '4', 16)} was cancelled.",
    ),
    ("tracking_ups", lambda r: f"Tracking: 1Z{_rand(r, _UPPER_DIGITS, 16)} arrives Monday."),
    (
        "tracking_usps",
        lambda r: (
            f"USPS tracking 9400 {_digits(r, 4)} {_digits(r, 4)} "
            f"{_digits(r, 4)} {_digits(r, 4)} {_digits(r, 2)}."
        ),
    ),
    ("luhn_invalid_card", lambda r: f"Card {_bad_card(r)} was declined."),
    ("bad_iban", lambda r: f"IBAN {iban(r, valid=False)} bounced."),
    ("impossible_ssn", lambda r: f"SSN {_bad_ssn(r)} is invalid."),
    ("version", lambda r: f"Upgrade to v{r.randint(1, 9)}.{r.randint(0, 20)}.{r.randint(0, 50)}."),
    ("price", lambda r: f"Total: ${r.randint(1, 99)},{_digits(r, 3)}.{_digits(r, 2)} incl. tax."),
    ("date", lambda r: f"Meeting on {r.randint(2020, 2030)}-{r.randint(1, 12):02d}-15 at 10:30."),
    ("password_prose", lambda r: "Password: please reset it from the account settings page."),
    ("token_code", lambda r: "token = get_token_from_environment()  # never hard-code it"),
    ("placeholder_url", lambda r: "Use postgres://user:${DB_PASSWORD}@localhost/app in dev."),
)


def generate_corpus(rnd: random.Random, per_type: int = 60) -> list[Doc]:
    docs: list[Doc] = []
    terms = [f"Project {w}" for w in ("Falcon", "Bluebird", "Nimbus", "Kestrel")]
    for _ in range(per_type):
        for typ, gen, template in TEMPLATES:
            docs.append(_place(rnd, typ, gen(rnd), template))
        term = rnd.choice(terms)
        docs.append(_place(rnd, "ORG_TERM", term, "Status update on {v}: launch slips a week."))
        docs[-1] = Doc(docs[-1].text, "ORG_TERM", docs[-1].start, docs[-1].end, term=term)
        for kind, neg in NEGATIVES:
            docs.append(Doc(f"{rnd.choice(FILLER)} {neg(rnd)}", negative=kind))
    return docs


def _place(rnd: random.Random, typ: str, value: str, template: str) -> Doc:
    lead = rnd.choice(FILLER) + " "
    head, _, tail = template.partition("{v}")
    head = head.replace("{{", "{").replace("}}", "}")
    tail = tail.replace("{{", "{").replace("}}", "}")
    text = lead + head + value + tail
    start = len(lead) + len(head)
    return Doc(text, typ, start, start + len(value))


def generate_prompts_1kb(rnd: random.Random, n: int) -> list[str]:
    """~1 KB prompts: mostly prose, a few identifiers, like a support ticket."""
    out: list[str] = []
    for _ in range(n):
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < 900:
            if rnd.random() < 0.12:
                _typ, gen, template = rnd.choice(TEMPLATES)
                parts.append(template.replace("{v}", gen(rnd)).replace("{{", "{"))
            elif rnd.random() < 0.08:
                parts.append(rnd.choice(NEGATIVES)[1](rnd))
            else:
                parts.append(rnd.choice(FILLER))
        out.append(" ".join(parts)[:1024])
    return out
