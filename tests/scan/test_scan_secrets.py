from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest

from hybridgate.scan import Scanner

Found = Callable[[Scanner, str], list[tuple[str, str]]]
Types = Callable[[Scanner, str], set[str]]


A = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _jwt(header: dict[str, str]) -> str:
    def enc(o: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b"=").decode()

    return f"{enc(header)}.{enc({'sub': '1234567890'})}.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


KNOWN = [
    ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_ACCESS_KEY", "ASIAY34FZKBOKMUTVV7A"),
    ("GITHUB_TOKEN", "ghp_" + A[:36]),
    ("GITHUB_TOKEN", "github_pat_11ABCDEFG0123456789_" + A[:59]),
    ("GITLAB_TOKEN", "glpat-" + A[:20]),
    ("SLACK_TOKEN", "xoxb-123456789012-1234567890123-" + A[:24]),
    ("STRIPE_KEY", "sk_live_" + A[:24]),
    ("STRIPE_KEY", "rk_test_" + A[10:40]),
    ("OPENAI_API_KEY", "sk-proj-" + A[:48]),
    ("OPENAI_API_KEY", "sk-" + A[:48]),
    ("ANTHROPIC_API_KEY", "sk-ant-api03-" + A * 2),
    ("HUGGINGFACE_TOKEN", "hf_" + A[:34]),
    ("GOOGLE_API_KEY", "AIza" + A[:35]),
    ("JWT", _jwt({"alg": "HS256", "typ": "JWT"})),
    ("GOOGLE_OAUTH_TOKEN", "ya29." + A[:40]),
    ("NPM_TOKEN", "npm_" + A[:36]),
    ("PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc" + A),
    ("SENDGRID_KEY", "SG." + A[:22] + "." + A[:43]),
    ("DIGITALOCEAN_TOKEN", "dop_v1_" + "0123456789abcdef" * 4),
    ("SHOPIFY_TOKEN", "shpat_" + "0123456789abcdef" * 2),
    ("SLACK_TOKEN", "hooks.slack.com/services/T0ABCDEF1/B0ABCDEF2/" + A[:24]),
]


@pytest.mark.parametrize(("kind", "value"), KNOWN)
def test_known_formats(scanner: Scanner, kind: str, value: str, found: Found) -> None:
    assert found(scanner, f'headers = {{"Authorization": "{value}"}}') == [(kind, value)]


@pytest.mark.parametrize(
    "text",
    [
        "AKIAIOSFODNN7EXAMPL is one short",
        "XAKIAIOSFODNN7EXAMPLE glued",
        "ghp_tooshort123",
        "task-force sk-learn is a library",
        "sk_live_short",
        "hf_hub_download(repo_id)",
        "AIzaTooShort",
        "eyJhbGciOi is not a token",
        "eyJub3QiOiJqc29uIGhlYWRlciJ9.eyJzdWIiOiIxIn0.c2ln",  # header without alg/typ
    ],
)
def test_known_format_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert types(scanner, text) == set()


def test_aws_secret_next_to_key_id(scanner: Scanner, found: Found) -> None:
    text = "AKIAIOSFODNN7EXAMPLE,wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(scanner, text) == [
        ("AWS_ACCESS_KEY", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_SECRET_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ]
    named = "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    assert found(scanner, named) == [("AWS_SECRET_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]


def test_pem_private_key(scanner: Scanner, found: Found, types: Types) -> None:
    body = "\n".join([A + "+/"] * 3)
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    assert found(scanner, f"key:\n{block}\nthanks") == [("PRIVATE_KEY", block)]
    escaped = block.replace("\n", "\\n")  # as it appears inside JSON
    assert found(scanner, f'{{"k": "{escaped}"}}') == [("PRIVATE_KEY", escaped)]
    openssh = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA"
    assert found(scanner, openssh) == [("PRIVATE_KEY", openssh)]  # truncated: to body end
    assert types(scanner, "-----BEGIN PUBLIC KEY-----\nMIIBIjAN\n-----END PUBLIC KEY-----") == set()


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (
            "db: postgres://app:S3cr3tPw@db1.internal:5432/prod",
            "postgres://app:S3cr3tPw@db1.internal:5432/prod",
        ),
        ("redis://:hunter2xyz@cache:6379/0.", "redis://:hunter2xyz@cache:6379/0"),
        ("see https://bob:pa55word@example.com/x", "https://bob:pa55word@example.com/x"),
    ],
)
def test_connection_strings(scanner: Scanner, text: str, value: str, found: Found) -> None:
    assert ("CONNECTION_STRING", value) in found(scanner, text)


@pytest.mark.parametrize(
    "text",
    [
        "postgres://user:${DB_PASSWORD}@localhost/app",
        "postgres://user:<password>@localhost/app",
        "postgres://user:****@localhost/app",
        "https://example.com/path?q=a:b",
        "postgres://localhost:5432/app",
    ],
)
def test_connection_string_placeholders(scanner: Scanner, text: str, types: Types) -> None:
    assert "CONNECTION_STRING" not in types(scanner, text)


def test_ado_style_connection_string(scanner: Scanner, found: Found) -> None:
    text = "Server=db01;Database=crm;User Id=sa;Password=Xk9#mQ2!vL;"
    assert found(scanner, text) == [("CONNECTION_STRING", "Xk9#mQ2!vL")]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"db_password": "Tr0ub4dor&3xyz"}', "Tr0ub4dor&3xyz"),
        ("API_KEY=8f14e45fceea167a5a36dedd4bea2543", "8f14e45fceea167a5a36dedd4bea2543"),
        ("client_secret: 'q8Zt2LxY9wVb4KfR'", "q8Zt2LxY9wVb4KfR"),
        ("my password is hunter2hunter2", "hunter2hunter2"),
        ("export GH_TOKEN=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5", "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"),
    ],
)
def test_generic_assigned_secrets(scanner: Scanner, text: str, value: str, found: Found) -> None:
    assert found(scanner, text) == [("GENERIC_SECRET", value)]


@pytest.mark.parametrize(
    "text",
    [
        "Password: please reset it from the settings page.",
        "token = get_token_from_environment()",
        "password = os.environ['DB_PASSWORD']",
        "api_key: ${OPENAI_API_KEY}",
        "secret = None",
        "max_tokens: 4096",
        "password: str",
        "token: self.settings.token",
        'password = "changeme"',
    ],
)
def test_generic_secret_near_misses(scanner: Scanner, text: str, types: Types) -> None:
    assert types(scanner, text) == set()


@pytest.mark.parametrize(
    "text",
    [
        # What agent CLIs send in every request: session, cache and thread ids.
        '{"session_id": "7f1c2a9e-4b3d-4e8a-9c1f-2d3e4f5a6b7c"}',
        '{"prompt_cache_key": "019a2b3c-4d5e-7f60-8a9b-0c1d2e3f4a5b"}',
        "session=7F1C2A9E-4B3D-4E8A-9C1F-2D3E4F5A6B7C",
        '{"user_id": "user_3f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a'
        '_account__session_7f1c2a9e-4b3d-4e8a-9c1f-2d3e4f5a6b7c"}',
    ],
)
def test_uuid_under_a_key_like_name_is_an_identifier(
    scanner: Scanner, text: str, types: Types
) -> None:
    assert types(scanner, text) == set()


@pytest.mark.parametrize(
    "text",
    [
        "api_key=7f1c2a9e-4b3d-4e8a-9c1f-2d3e4f5a6b7c",  # some vendors' keys are UUIDs
        'token: "7f1c2a9e-4b3d-4e8a-9c1f-2d3e4f5a6b7c"',
        "session=8f3kQ9zLm2Xv7Rt4Wp1Yb6Nc",  # not a UUID: still high-entropy under a key name
    ],
)
def test_uuid_under_a_secret_name_still_counts(scanner: Scanner, text: str, types: Types) -> None:
    assert types(scanner, text) == {"GENERIC_SECRET"}


def test_azure_storage_key(scanner: Scanner, found: Found) -> None:
    key = A[:40] + "+/" + A[:44] + "=="
    text = f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={key};"
    assert ("AZURE_STORAGE_KEY", "AccountKey=" + key) in found(scanner, text)
