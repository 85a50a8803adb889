"""Secrets: known token formats, PEM private keys, JWTs, credentials in URLs,
and high-entropy values assigned to secret-sounding names.

Every format is anchored at a literal trigger found by the shared
Aho-Corasick pass, so a prompt without ``ghp_`` never runs the GitHub regex.
Each anchored match is bounded, and triggers inside a stretch already
examined are skipped, which keeps hostile repetitions linear.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass

from hybridgate.scan.findings import DataClass, Finding
from hybridgate.scan.text import AUTH, CONN, SECRET_NAME, SECRET_WEAK, TextView
from hybridgate.scan.validators import char_classes, shannon_entropy


@dataclass(frozen=True)
class SecretFormat:
    type: str
    triggers: tuple[str, ...]
    pattern: str
    left_boundary: bool = True


_AWS_PREFIXES = (
    "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AIPA", "ANPA", "ANVA", "AROA", "APKA", "ASCA",
)  # fmt: skip

_GITLAB_TRIGGERS = (
    *(f"gl{p}-" for p in ("pat", "dt", "rt", "rtr", "ptt", "cbt", "oas", "imt", "soat", "ft")),
    "glagent-",
    "GR1348941",
)

SECRET_FORMATS: tuple[SecretFormat, ...] = (
    SecretFormat("AWS_ACCESS_KEY", _AWS_PREFIXES, r"[A-Z]{4}[A-Z0-9]{16}(?![A-Za-z0-9])"),
    SecretFormat(
        "GITHUB_TOKEN",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        r"gh[pousr]_[A-Za-z0-9]{36,251}(?![A-Za-z0-9])",
    ),
    SecretFormat("GITHUB_TOKEN", ("github_pat_",), r"github_pat_[A-Za-z0-9_]{22,255}(?![\w])"),
    SecretFormat(
        "GITLAB_TOKEN",
        _GITLAB_TRIGGERS,
        r"(?:gl[a-z]{2,5}-|GR1348941)[A-Za-z0-9_\-]{20,255}(?![\w-])",
    ),
    SecretFormat(
        "SLACK_TOKEN",
        tuple(f"xox{c}-" for c in "abposre"),
        r"xox[abposre]-[A-Za-z0-9-]{10,250}(?![\w-])",
    ),
    SecretFormat("SLACK_TOKEN", ("xapp-",), r"xapp-[A-Za-z0-9-]{20,250}(?![\w-])"),
    SecretFormat(
        "SLACK_TOKEN",
        ("hooks.slack.com/services/",),
        r"hooks\.slack\.com/services/[A-Za-z0-9_/]{20,200}",
        left_boundary=False,
    ),
    SecretFormat(
        "STRIPE_KEY",
        ("sk_live_", "sk_test_", "rk_live_", "rk_test_"),
        r"[sr]k_(?:live|test)_[A-Za-z0-9]{10,247}(?![A-Za-z0-9])",
    ),
    SecretFormat("STRIPE_KEY", ("whsec_",), r"whsec_[A-Za-z0-9+/=]{24,128}(?![A-Za-z0-9])"),
    SecretFormat("ANTHROPIC_API_KEY", ("sk-ant-",), r"sk-ant-[A-Za-z0-9_\-]{20,250}(?![\w-])"),
    SecretFormat(
        "OPENAI_API_KEY",
        ("sk-",),
        r"sk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_\-]{20,300}(?![\w-])"
        r"|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}(?![\w-])|[A-Za-z0-9]{48}(?![\w-]))",
    ),
    SecretFormat("HUGGINGFACE_TOKEN", ("hf_",), r"hf_[A-Za-z0-9]{30,64}(?![A-Za-z0-9])"),
    SecretFormat("HUGGINGFACE_TOKEN", ("api_org_",), r"api_org_[A-Za-z0-9]{30,64}(?![A-Za-z0-9])"),
    SecretFormat("GOOGLE_API_KEY", ("AIza",), r"AIza[0-9A-Za-z_\-]{35}(?![\w-])"),
    SecretFormat("GOOGLE_OAUTH_TOKEN", ("ya29.",), r"ya29\.[0-9A-Za-z_\-]{20,2048}(?![\w-])"),
    SecretFormat("NPM_TOKEN", ("npm_",), r"npm_[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    SecretFormat(
        "PYPI_TOKEN", ("pypi-AgEIcHlwaS5vcmc",), r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,512}"
    ),
    SecretFormat("SENDGRID_KEY", ("SG.",), r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}(?![\w-])"),
    SecretFormat(
        "DIGITALOCEAN_TOKEN",
        ("dop_v1_", "doo_v1_", "dor_v1_"),
        r"do[por]_v1_[a-f0-9]{64}(?![A-Za-z0-9])",
    ),
    SecretFormat(
        "SHOPIFY_TOKEN",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?![A-Za-z0-9])",
    ),
    SecretFormat(
        "AZURE_STORAGE_KEY", ("AccountKey=",), r"AccountKey=[A-Za-z0-9+/]{40,100}={0,2}", False
    ),
)

#: Every literal the secrets detectors need from the shared trigger pass.
SECRET_TRIGGERS: tuple[str, ...] = (
    *{t for f in SECRET_FORMATS for t in f.triggers},
    "-----BEGIN",
    "eyJ",
    "://",
)

_AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")


class SecretFormatDetector:
    """Known vendor token formats, plus the AWS secret key next to its key id."""

    name = "secret_formats"

    def __init__(self) -> None:
        by_trigger: dict[str, list[tuple[SecretFormat, re.Pattern[str]]]] = {}
        for fmt in SECRET_FORMATS:
            compiled = re.compile(fmt.pattern)
            for trig in fmt.triggers:
                by_trigger.setdefault(trig, []).append((fmt, compiled))
        self._by_trigger = by_trigger

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text = view.text
        for trig, positions in view.triggers.items():
            formats = self._by_trigger.get(trig)
            if formats is None:
                continue
            for pos in positions:
                for fmt, rx in formats:
                    if fmt.left_boundary and pos > 0 and (text[pos - 1].isalnum()):
                        continue
                    m = rx.match(text, pos)
                    if m is None:
                        continue
                    out.append(Finding(fmt.type, DataClass.SECRET, pos, m.end(), 0.99, self.name))
                    if fmt.type == "AWS_ACCESS_KEY":
                        out.extend(self._aws_secret(text, m.end()))
        return out

    def _aws_secret(self, text: str, after: int) -> list[Finding]:
        m = _AWS_SECRET.search(text, after, after + 200)
        if m is None or char_classes(m.group()) < 3 or shannon_entropy(m.group()) < 4.0:
            return []
        return [Finding("AWS_SECRET_KEY", DataClass.SECRET, m.start(), m.end(), 0.9, self.name)]


_PEM_HEAD = re.compile(r"-----BEGIN ([A-Z0-9 ]{0,40}?)PRIVATE KEY(?: BLOCK)?-----")
_PEM_BODY = re.compile(r"(?:[A-Za-z0-9+/=:,\- \t\r\n]|\\[nrt])*")


class PrivateKeyDetector:
    """PEM/OpenSSH/PGP private key blocks, to their END line (or the end of the body)."""

    name = "private_key"

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text = view.text
        last = 0
        next_end = -2  # cached position of the next "-----END" (-1: none left)
        for pos in view.trigger("-----BEGIN"):
            if pos < last:
                continue
            m = _PEM_HEAD.match(text, pos)
            if m is None:
                continue
            if next_end != -1 and next_end < m.end():
                next_end = text.find("-----END", m.end())
            if next_end >= 0:
                close = text.find("-----", next_end + 8, next_end + 100)
                end = close + 5 if close >= 0 else next_end + 8
            else:
                body = _PEM_BODY.match(text, m.end())
                end = body.end() if body else m.end()
            out.append(Finding("PRIVATE_KEY", DataClass.SECRET, pos, end, 0.99, self.name))
            last = end
        return out


_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,4096}\.eyJ[A-Za-z0-9_-]{5,65536}\.[A-Za-z0-9_-]{0,4096}")
_B64URL_RUN = re.compile(r"[A-Za-z0-9_.-]*")


def _jwt_header_ok(segment: str) -> bool:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return False
    return isinstance(header, dict) and ("alg" in header or "typ" in header)


class JwtDetector:
    name = "jwt"

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text = view.text
        skip_to = 0
        for pos in view.trigger("eyJ"):
            if pos < skip_to or (pos > 0 and (text[pos - 1].isalnum() or text[pos - 1] in "_-")):
                continue
            m = _JWT.match(text, pos)
            if m is not None and right_free(text, m.end()):
                header = text[pos : text.index(".", pos)]
                if _jwt_header_ok(header):
                    out.append(Finding("JWT", DataClass.SECRET, pos, m.end(), 0.95, self.name))
                    skip_to = m.end()
                    continue
            run = _B64URL_RUN.match(text, pos)
            skip_to = run.end() if run else pos + 1
        return out


def right_free(text: str, end: int) -> bool:
    return end >= len(text) or not (text[end].isalnum() or text[end] in "_-")


_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USERINFO = re.compile(
    r"([^\s/:@?#'\"<>]{0,256}):([^\s@/?#'\"<>]{1,256})@[A-Za-z0-9.\-\[\]:_%]{1,256}"
    r"[^\s'\"<>]{0,2048}"
)
_PLACEHOLDER = re.compile(
    r"(?:\*+|x+|\.{3}|<[^>]*>|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|\{\{?[^}]*\}\}?|%\([a-z_]+\)s"
    r"|password|passwd|pass|pwd|secret|changeme|redacted|your[_-]?\w*|example|none|null"
    r"|true|false|undefined|string)",
    re.IGNORECASE,
)


def is_placeholder(value: str) -> bool:
    return _PLACEHOLDER.fullmatch(value) is not None


class ConnectionStringDetector:
    """URLs carrying a password (``postgres://user:pw@host/db``)."""

    name = "connection_string"

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text = view.text
        last = 0
        for pos in view.trigger("://"):
            if pos < last:
                continue
            s = pos
            while s > 0 and pos - s < 32 and text[s - 1] in _SCHEME_CHARS:
                s -= 1
            if s == pos or not text[s].isalpha():
                continue
            m = _USERINFO.match(text, pos + 3)
            if m is None or is_placeholder(m.group(2)):
                continue
            end = m.end()
            while end > m.start() and text[end - 1] in ".,;:)]}":
                end -= 1
            out.append(Finding("CONNECTION_STRING", DataClass.SECRET, s, end, 0.95, self.name))
            last = end
        return out


_ASSIGN = re.compile(
    r"[A-Za-z0-9_.\-]{0,40}[\"']?\]?"
    r"(?:[ \t]{0,3}(?::=|=>|==?|:)[ \t]{0,3}|[ \t]{1,3}(?:is|was)[ \t]{1,3})"
    r"(?:b?[\"'`])?([^\s\"'`,;<>(){}\[\]]{6,512})"
)
_SPACED = re.compile(r"[A-Za-z0-9_]{0,20}[ \t]{1,2}([A-Za-z0-9+/_\-]{10,512}={0,2})(?![^\s.,;])")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_]*(?:[.][A-Za-z_$][A-Za-z0-9_]*)*")
_REFERENCE_PREFIXES = ("$", "%", "os.", "process.env", "env.", "getenv", "vault:", "secrets.")


#: Names that say "password": a short value is still one (``password: hunter2``).
_PASSWORD_NAMES = frozenset(
    {"password", "passwd", "pwd", "pass", "passphrase", "pw", "pin", "passcode", "kennwort",
     "passwort", "mot de passe", "contraseña"}
)  # fmt: skip


def _secret_value_ok(value: str, password: bool = False) -> bool:
    if is_placeholder(value) or value.lower().startswith(_REFERENCE_PREFIXES):
        return False
    if len(value) < (4 if password else 8):
        return False
    if _IDENTIFIER.fullmatch(value) and not any(c.isdigit() for c in value):
        # A code reference (variable, attribute), not a literal - unless a
        # password label names a mixed-case word.
        return password and len(value) >= 8 and char_classes(value) >= 2
    entropy = shannon_entropy(value)
    has_letter = any(c.isalpha() for c in value)
    has_other = any(c.isdigit() or not (c.isalnum() or c in "_-.") for c in value)
    if password and (has_letter or has_other):
        return not value.isdigit() or len(value) >= 6
    if has_letter and has_other and entropy >= 2.5:
        return True
    return len(value) >= 16 and entropy >= 3.5


def _weak_value_ok(value: str) -> bool:
    """Under a key-like name (``*_KEY``, ``auth``...): gitleaks' generic-api-key bar.

    At least 10 characters, Shannon entropy >= 3.5 bits, a digit and a letter,
    not a placeholder or reference, not a dotted/pathy word.
    """
    if len(value) < 10 or is_placeholder(value) or value.lower().startswith(_REFERENCE_PREFIXES):
        return False
    if not (any(c.isdigit() for c in value) and any(c.isalpha() for c in value)):
        return False
    if "/" in value and not value.endswith("="):
        return False  # a path or URL
    if _UUID.fullmatch(value):
        # Session, request and cache ids under names like ``session_id`` or
        # ``prompt_cache_key`` (every agent CLI sends them): an identifier, not a
        # credential. A UUID under a strong name (``api_key``, ``token``) still counts.
        return False
    return shannon_entropy(value) >= 3.5


class GenericSecretDetector:
    """A value assigned to a name like password / secret / token / api_key.

    Only the value is reported, so redaction keeps the name (the model still
    sees *that* a password was there). A 40-character base64 value under an
    AWS-looking name is typed AWS_SECRET_KEY; ``Password=`` inside a
    ``Server=...;`` string is typed CONNECTION_STRING. Key-like names
    (``DB_KEY``, ``auth``, ``salt`` ...) need a high-entropy value, as in
    gitleaks' generic-api-key rule.
    """

    name = "generic_secret"

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, lower = view.text, view.lower
        scanned_to = 0
        hits = sorted(
            [(s, e, True) for s, e in view.keyword_hits(SECRET_NAME)]
            + [(s, e, False) for s, e in view.keyword_hits(SECRET_WEAK)]
        )
        for s, e, strong in hits:
            if s < scanned_to:
                continue  # inside a value already examined: keeps repetition linear
            m = _ASSIGN.match(text, e)
            spaced = False
            if m is None and strong:
                m = _SPACED.match(text, e)  # ``api_key 7f3k...``: no operator, high entropy
                spaced = True
            if m is None:
                continue
            value = m.group(1).rstrip(".")
            if spaced:
                ok = _weak_value_ok(value)
            elif strong:
                password = lower[s:e] in _PASSWORD_NAMES
                ok = _secret_value_ok(value, password)
            else:
                ok = _weak_value_ok(value)
            if not ok and not strong:
                continue  # a stronger name may still follow inside this stretch
            scanned_to = m.end()
            if not ok or text[m.end() : m.end() + 1] == "(":
                continue
            vs, ve = m.start(1), m.start(1) + len(value)
            name_text = lower[max(0, s - 24) : m.start(1)]
            kind = "GENERIC_SECRET"
            if ("aws" in name_text or "secret_access" in name_text) and _AWS_SECRET.fullmatch(
                value
            ):
                kind = "AWS_SECRET_KEY"
            elif view.near(s, e, CONN, before=300) and "=" in text[e : m.start(1)]:
                kind = "CONNECTION_STRING"
            conf = 0.9 if char_classes(value) >= 3 else 0.8
            out.append(Finding(kind, DataClass.SECRET, vs, ve, conf, self.name))
        out.extend(_env_assignments(text))
        return out


_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]{2,63}\Z")
_ENV_VALUE = re.compile(r"[\"']?([A-Za-z0-9+/_\-]{20,512}={0,2})[\"']?(?=\s|$|[;,])")


def _env_assignments(text: str) -> list[Finding]:
    """``NAME=value`` lines of ``.env`` files and CI logs, whatever the name.

    In the spirit of detect-secrets' base64 entropy plugin: a value of 20+
    characters from the base64 alphabet with >= 4.0 bits of entropy *and*
    upper case, lower case and digits (hex digests, UUIDs and words cannot
    have all three).
    """
    out: list[Finding] = []
    pos = text.find("=")
    while pos != -1:
        nxt = text.find("=", pos + 1)
        k = pos
        while k > 0 and pos - k < 64 and (text[k - 1].isalnum() or text[k - 1] == "_"):
            k -= 1
        if k < pos and (k == 0 or not text[k - 1].isalnum()) and _ENV_NAME.match(text, k, pos):
            m = _ENV_VALUE.match(text, pos + 1)
            if m is not None:
                value = m.group(1)
                core = value.rstrip("=")
                if (
                    len(core) >= 20
                    and shannon_entropy(core) >= 4.0
                    and any(c.isupper() for c in core)
                    and any(c.islower() for c in core)
                    and any(c.isdigit() for c in core)
                ):
                    out.append(
                        Finding(
                            "GENERIC_SECRET",
                            DataClass.SECRET,
                            m.start(1),
                            m.end(1),
                            0.8,
                            "generic_secret",
                        )
                    )
                    nxt = text.find("=", m.end())
        pos = nxt
    return out


_AUTH_VALUE = re.compile(r"[ \t]{1,3}([A-Za-z0-9+/=._~\-]{8,4096})")


class AuthorizationDetector:
    """``Authorization: Basic dXNlcjpwYXNz`` and ``Bearer <token>`` credentials.

    A Basic value must decode to ``user:password``; a Bearer (or Digest,
    Token) value counts after an ``Authorization`` name, or alone when it is
    long and high-entropy enough to be a credential.
    """

    name = "http_authorization"

    def detect(self, view: TextView) -> list[Finding]:
        out: list[Finding] = []
        text, lower = view.text, view.lower
        for s, e in view.keyword_hits(AUTH):
            scheme = lower[s:e]
            if scheme == "authorization":
                continue
            m = _AUTH_VALUE.match(text, e)
            if m is None:
                continue
            value = m.group(1)
            labelled = (
                view.near(s, e, AUTH, before=24) and "authorization" in lower[max(0, s - 24) : s]
            )
            if scheme == "basic":
                if not (_basic_ok(value) or labelled):
                    continue
                kind = "BASIC_AUTH"
            else:
                strong = len(value) >= 16 and shannon_entropy(value) >= 3.5
                if not (labelled and len(value) >= 8) and not (scheme == "bearer" and strong):
                    continue
                if is_placeholder(value):
                    continue
                kind = "BEARER_TOKEN"
            out.append(Finding(kind, DataClass.SECRET, m.start(1), m.end(1), 0.95, self.name))
        return out


def _basic_ok(value: str) -> bool:
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    _user, sep, password = decoded.partition(":")
    return bool(sep and password) and decoded.isprintable()
