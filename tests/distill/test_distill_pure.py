"""The flywheel's pure parts: task naming, output checks, capture rules, terms, sealing,
promotion judgement."""

from __future__ import annotations

from pathlib import Path

import pytest

from hybridgate.distill.capture import ExchangeFacts, decide_capture, pair_hash, pair_record
from hybridgate.distill.checks import OutputCheck
from hybridgate.distill.config import CheckConfig, PromotionConfig, TaskConfig, TermsEntry
from hybridgate.distill.crypto import Sealer, SealError
from hybridgate.distill.promote import adapter_serves, judge_stage
from hybridgate.distill.store import Comparison
from hybridgate.distill.tasks import task_of
from hybridgate.distill.terms import judge_terms
from hybridgate.errors import InvalidRequest

KNOWN: dict[str, object] = {"triage": object()}


def test_task_naming_order_and_errors() -> None:
    body: dict[str, object] = {"metadata": {"task": "other"}}
    assert task_of("triage", body, "task:other", KNOWN) == "triage"  # header wins
    assert task_of(None, {"metadata": {"task": "triage"}}, "any", KNOWN) == "triage"
    assert task_of(None, {}, "task:triage", KNOWN) == "triage"
    assert task_of(None, {}, "gpt-4o", KNOWN) is None
    assert task_of("  ", {}, "gpt-4o", KNOWN) is None
    cases: list[tuple[str | None, dict[str, object], str]] = [
        ("nope", {}, "any"),
        (None, {"metadata": {"task": "nope"}}, "any"),
        (None, {"metadata": {"task": 3}}, "any"),
        (None, {}, "task:nope"),
        ("x" * 5000, {}, "any"),
    ]
    for header, b, model in cases:
        with pytest.raises(InvalidRequest) as err:
            task_of(header, b, model, KNOWN)
        assert len(err.value.message) < 200  # never echoes a huge value


def test_label_check() -> None:
    c = OutputCheck(CheckConfig(kind="label_set", labels=["billing", "technical"]))
    assert c.judge(" Billing\n").valid and c.judge("billing").normalized == "billing"
    assert not c.judge("bill").valid and not c.judge(None).valid
    assert c.agree("BILLING", "billing") and not c.agree("billing", "technical")
    assert not c.agree("nonsense", "nonsense")  # agreement needs valid answers


def test_json_schema_and_exact_checks() -> None:
    schema = {
        "type": "object",
        "properties": {"order": {"type": "string"}, "qty": {"type": "integer"}},
        "required": ["order", "qty"],
        "additionalProperties": False,
    }
    c = OutputCheck(CheckConfig.model_validate({"kind": "json_schema", "schema": schema}))
    assert c.judge('{"order": "A1", "qty": 2}').valid
    assert not c.judge('{"order": "A1"}').valid
    assert not c.judge("not json").valid
    assert c.agree('{"qty": 2, "order": "A1"}', '{"order":"A1","qty":2}')
    e = OutputCheck(CheckConfig(kind="exact"))
    assert e.agree(" yes ", "yes") and not e.agree("yes", "no")
    with pytest.raises(ValueError):
        CheckConfig(kind="label_set")
    with pytest.raises(ValueError):
        CheckConfig(kind="json_schema")


TASK = TaskConfig.model_validate(
    {
        "model": "frontier",
        "check": {"kind": "exact"},
        "capture": {"teams": ["support"], "purpose": "internal-task-model"},
    }
)
ALLOWED = TermsEntry(model="m", training_use="allowed", source="s")


def _facts(**kw: object) -> ExchangeFacts:
    base: dict[str, object] = {
        "team": "support",
        "outcome": "ok",
        "served_by_adapter": False,
        "scan_complete": True,
        "data_classes": (),
        "action": "allow",
        "teacher_model": "m",
        "has_answer": True,
    }
    base.update(kw)
    return ExchangeFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"outcome": "error"}, "no answer"),
        ({"has_answer": False}, "no answer"),
        ({"served_by_adapter": True}, "adapter"),
        ({"team": "sales"}, "capture is off"),
        ({"team": None}, "capture is off"),
        ({"scan_complete": False}, "not completely scanned"),
        ({"scan_complete": None}, "not completely scanned"),
        ({"data_classes": ("secret",), "action": "redact"}, "secret"),
        ({"data_classes": ("health",), "action": "on_prem_only"}, "keeps the data out"),
        ({"action": "block"}, "keeps the data out"),
        ({"action": None}, "keeps the data out"),
    ],
)
def test_capture_refusals(change: dict[str, object], reason: str) -> None:
    d = decide_capture(TASK, _facts(**change), ALLOWED)
    assert not d.capture and reason in d.reason


def test_capture_allowed_and_masked_classes() -> None:
    assert decide_capture(TASK, _facts(), ALLOWED).capture
    d = decide_capture(TASK, _facts(data_classes=("contact",), action="redact"), ALLOWED)
    assert d.capture


def test_terms_and_override() -> None:
    purpose = "internal-task-model"
    assert not judge_terms(None, "m", purpose).allowed
    forbidden = TermsEntry(model="m", training_use="forbidden", source="https://x/terms#4")
    v = judge_terms(forbidden, "m", purpose)
    assert not v.allowed and "https://x/terms#4" in v.reason
    restricted = TermsEntry(
        model="m", training_use="restricted", allowed_purposes=["evaluation"], source="s"
    )
    assert not judge_terms(restricted, "m", purpose).allowed
    ok = restricted.model_copy(update={"allowed_purposes": [purpose]})
    assert judge_terms(ok, "m", purpose).allowed
    no_compete = TermsEntry(
        model="m", training_use="allowed", forbidden_purposes=[purpose], source="s"
    )
    assert not judge_terms(no_compete, "m", purpose).allowed
    d = decide_capture(TASK, _facts(), forbidden, override="rcpt_override_1")
    assert d.capture and d.override == "rcpt_override_1" and "override" in d.reason
    assert not decide_capture(TASK, _facts(), forbidden).capture


def test_sealing_binds_row_and_key() -> None:
    s = Sealer(b"k" * 32)
    sealed = s.seal(b"pair", b"task\x00rcpt_1\x000")
    assert b"pair" not in sealed
    assert s.open(sealed, b"task\x00rcpt_1\x000") == b"pair"
    with pytest.raises(SealError):
        s.open(sealed, b"task\x00rcpt_2\x001")  # moved to another row
    with pytest.raises(SealError):
        Sealer(b"j" * 32).open(sealed, b"task\x00rcpt_1\x000")
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(SealError):
        s.open(tampered, b"task\x00rcpt_1\x000")


def test_pair_hash_is_salted() -> None:
    a = pair_record([{"role": "user", "content": "x"}], "billing", "m")
    b = pair_record([{"role": "user", "content": "x"}], "billing", "m")
    assert pair_hash(a) != pair_hash(b)
    assert pair_hash(a) == pair_hash(dict(a))


def test_promotion_judgement() -> None:
    cfg = PromotionConfig(min_samples=4)
    good = [Comparison(True, True, 1.0, 2.0)] * 4
    bad = [Comparison(False, True, 1.0, 2.0)] * 2 + [Comparison(True, True, 1.0, 2.0)] * 2
    assert judge_stage("shadow", good[:3], 0.8, cfg).verdict == "hold"
    assert judge_stage("shadow", good, 0.8, cfg).verdict == "advance"
    assert judge_stage("canary", good, 0.8, cfg).verdict == "advance"
    assert judge_stage("full", good, 0.8, cfg).verdict == "hold"
    assert judge_stage("canary", bad, 0.8, cfg).verdict == "rollback"
    assert judge_stage("registered", good, 0.8, cfg).verdict == "hold"
    manual = PromotionConfig(min_samples=4, auto_advance=False)
    assert judge_stage("shadow", good, 0.8, manual).verdict == "hold"
    share = sum(adapter_serves("canary", f"req_{i}", 0.25) for i in range(2000)) / 2000
    assert 0.2 < share < 0.3
    assert all(adapter_serves("full", f"req_{i}", 0.25) for i in range(10))
    assert not any(adapter_serves("shadow", f"req_{i}", 0.25) for i in range(10))


def test_catalog_kinds_need_the_task_to_answer() -> None:
    p = "internal-task-model"
    nc = TermsEntry(model="m", training_use="no_competing", source="https://x/t#r")
    assert not judge_terms(nc, "m", p).allowed  # undecided is a refusal
    assert not judge_terms(nc, "m", p, competing=True).allowed
    assert judge_terms(nc, "m", p, competing=False).allowed
    ro = TermsEntry(model="m", training_use="research_only", source="s")
    assert not judge_terms(ro, "m", p).allowed
    assert judge_terms(ro, "m", p, commercial=False).allowed
    nco = TermsEntry(model="m", training_use="allowed", commercial_outputs=False, source="s")
    assert not judge_terms(nco, "m", p).allowed
    assert judge_terms(nco, "m", p, commercial=False).allowed
    for kind in ("attribution_required", "derivative_inherits"):
        assert judge_terms(TermsEntry(model="m", training_use=kind, source="s"), "m", p).allowed


def test_catalog_source_reads_the_shipped_catalog() -> None:
    from hybridgate.distill.terms import CatalogTerms

    src = CatalogTerms()
    gpt = src.output_terms("gpt-4o")
    assert gpt is not None and gpt.training_use == "no_competing" and "openai.com" in gpt.source
    assert src.output_terms("no-such-model-xyz") is None


def test_responses_bodies_read_as_chat_messages_only_when_plain_text() -> None:
    from hybridgate.distill.capture import chat_messages_of

    text = {"type": "input_text", "text": "refund "}
    body = {
        "instructions": "Triage.",
        "input": [
            {"role": "user", "content": [text, {"type": "input_text", "text": "please"}]},
            {"type": "message", "role": "assistant", "content": "billing"},
            {"role": "user", "content": "again"},
        ],
    }
    assert chat_messages_of(body) == [
        {"role": "system", "content": "Triage."},
        {"role": "user", "content": "refund please"},
        {"role": "assistant", "content": "billing"},
        {"role": "user", "content": "again"},
    ]
    assert chat_messages_of({"input": "hi"}) == [{"role": "user", "content": "hi"}]
    image = {"type": "input_image", "image_url": "https://example.org/x.png"}
    call = {"type": "function_call", "name": "f", "arguments": "{}", "call_id": "c"}
    for bad in (
        {"input": "hi", "tools": [{"type": "web_search"}]},
        {"input": [{"role": "user", "content": [text, image]}]},
        {"input": [call]},
        {"input": [{"role": "tool", "content": "x"}]},
        {"input": "hi", "instructions": ["not", "text"]},
        {"input": [{"role": "user", "content": [{"type": "input_text", "text": 3}]}]},
        {"input": 42},
    ):
        assert chat_messages_of(bad) is None, bad


def test_the_distill_commands_say_plainly_when_postgres_is_unreachable(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hybridgate.cli.main import app as cli
    from hybridgate.ledger import KeyRing

    home = tmp_path / "home"
    KeyRing.load_or_create(home / "keys", "test.local/log")
    (home / "deployment.secret").write_bytes(b"s" * 32)
    cfg = tmp_path / "gw.yaml"
    cfg.write_text(
        f"home: {home}\n"
        "store: {kind: postgres, dsn: 'postgresql://nobody@127.0.0.1:1/none'}\n"
        "distill: {tasks: {}}\n"
    )
    out = CliRunner().invoke(cli, ["distill", "status", "--config", str(cfg)])
    assert out.exit_code == 2, out.output
    assert "cannot open the store: PostgreSQL unavailable" in out.output
