"""Capture through the real gateway: only under policy, masked, sealed, bound to receipts."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import ResponseTextDeltaEvent

from distill.flywheel_env import service, settle, triage_gateway
from gateway_harness import Harness
from hybridgate.distill.dataset import load_examples
from hybridgate.distill.events import record_override
from hybridgate.distill.tickets import SYSTEM, ticket


def _ask(client: openai.OpenAI, text: str, how: str) -> openai.types.chat.ChatCompletion:
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": text},
    ]
    if how == "header":
        return client.chat.completions.create(
            model="any", messages=messages, extra_headers={"x-hybridgate-task": "ticket-triage"}
        )
    if how == "metadata":
        return client.chat.completions.create(
            model="any", messages=messages, extra_body={"metadata": {"task": "ticket-triage"}}
        )
    return client.chat.completions.create(model="task:ticket-triage", messages=messages)


def _receipt(h: Harness, rid: str) -> dict[str, Any]:
    got = h.gw.ledger.get_receipt(rid)
    assert got is not None
    body: dict[str, Any] = got["receipt"]
    return body


def test_capture_keeps_only_what_policy_allows(
    tmp_path: Path, store_section: dict[str, Any]
) -> None:
    with triage_gateway(tmp_path, store=store_section) as h:
        support = h.openai(h.new_key(team="support"))
        other = h.openai(h.new_key(team="sales"))
        rng = random.Random(7)
        sent: list[tuple[str, str]] = []
        emails: list[str] = []
        for i in range(45):
            text, _ = ticket(rng, with_contact=0.5)
            if "@" in text:
                emails.append(text.split()[-1])
            r = _ask(support, text, ("header", "metadata", "model")[i % 3])
            rid = r._request_id  # not used; receipts come from the header below
            del rid
            sent.append((text, r.choices[0].message.content or ""))
        # the client sees its own e-mail restored, the upstream saw a placeholder
        assert emails, "the generator must put e-mail addresses in some tickets"
        assert not any(e in h.external_text() for e in emails)
        for _ in range(5):  # capture is off for this team
            _ask(other, ticket(rng)[0], "header")
        for _ in range(3):  # org-confidential: on-prem only, never captured
            _ask(support, "project-zephyr invoice question " + ticket(rng)[0], "header")
        settle(h)
        svc = service(h)
        examples = load_examples(svc.store, svc.sealer, "ticket-triage")
        assert len(examples) == 45
        dump = repr([(e.messages, e.answer) for e in examples])
        assert not any(e in dump for e in emails)
        assert "project-zephyr" not in dump
        assert "<EMAIL_ADDRESS" in dump
        labels = {e.answer for e in examples}
        assert labels <= {"billing", "technical", "account", "shipping"}
        # each pair is bound to its receipt: the receipt carries the pair's hash
        for e in examples[:10]:
            receipt = h.gw.ledger.get_receipt(e.receipt_id)
            assert receipt is not None
            body = receipt["receipt"]
            assert body["task"] == "ticket-triage"
            assert body["capture"] == "captured"
            assert body["capture_hash"] == e.pair_hash
            bundle = h.gw.ledger.bundle(e.receipt_id)  # on either log: the merged index
            assert bundle is not None and bundle["log_index"] == e.log_index
            assert body.get("log_index", e.log_index) == e.log_index
        # at rest, the pairs are ciphertext
        blobs = b"".join(bytes(r[0]) for r in h.gw.store.query("SELECT sealed FROM distill_pairs"))
        assert b"reach me at" not in blobs and b"triage" not in blobs.lower()


def test_receipt_says_why_nothing_was_captured(
    tmp_path: Path, store_section: dict[str, Any]
) -> None:
    with triage_gateway(tmp_path, store=store_section) as h:
        sales = h.openai(h.new_key(team="sales"))
        r = sales.chat.completions.with_raw_response.create(
            model="task:ticket-triage", messages=[{"role": "user", "content": "refund please"}]
        )
        rid = r.headers["x-hybridgate-receipt"]
        settle(h)
        got = h.gw.ledger.get_receipt(rid)
        assert got is not None
        body = got["receipt"]
        assert body["capture"] == "skipped: capture is off for team 'sales'"
        assert "capture_hash" not in body


def test_unknown_task_is_a_clear_error(tmp_path: Path, store_section: dict[str, Any]) -> None:
    with triage_gateway(tmp_path, store=store_section) as h:
        client = h.openai(h.new_key(team="support"))
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(
                model="any",
                messages=[{"role": "user", "content": "hi"}],
                extra_headers={"x-hybridgate-task": "no-such-task"},
            )
        assert "not configured" in str(err.value)
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model="task:no-such-task", messages=[{"role": "user", "content": "hi"}]
            )
        assert len(h.external.requests) == 0


def test_terms_refuse_until_an_override_is_logged(
    tmp_path: Path, store_section: dict[str, Any]
) -> None:
    with triage_gateway(tmp_path, store=store_section) as h:
        client = h.openai(h.new_key(team="support"))
        r = client.chat.completions.with_raw_response.create(
            model="task:claude-triage", messages=[{"role": "user", "content": "refund please"}]
        )
        settle(h)
        body = _receipt(h, r.headers["x-hybridgate-receipt"])
        # the catalog's structured terms: no competing models, and the task does not say
        assert "forbid training competing models" in body["capture"]
        assert "anthropic.com/legal/commercial-terms" in body["capture"]
        svc = service(h)
        assert svc.store.count("claude-triage") == 0
        rid = record_override(
            h.gw.ledger,
            svc.store,
            "claude-triage",
            "claude-3-5-sonnet-latest",
            "enterprise agreement section 4 allows it",
            "ops@example.org",
        )
        event = _receipt(h, rid)
        assert event["kind"] == "distill_event" and event["event"] == "terms_override"
        r = client.chat.completions.with_raw_response.create(
            model="task:claude-triage", messages=[{"role": "user", "content": "refund please"}]
        )
        settle(h)
        body = _receipt(h, r.headers["x-hybridgate-receipt"])
        assert body["capture"] == "captured"
        assert body["capture_override"] == rid
        assert svc.store.count("claude-triage") == 1


def test_catalog_terms_allow_a_declared_non_competing_use(
    tmp_path: Path, store_section: dict[str, Any]
) -> None:
    with triage_gateway(
        tmp_path, {"teams": ["support"], "competing": False}, store=store_section
    ) as h:
        client = h.openai(h.new_key(team="support"))
        r = client.chat.completions.with_raw_response.create(
            model="task:claude-triage", messages=[{"role": "user", "content": "refund please"}]
        )
        settle(h)
        assert _receipt(h, r.headers["x-hybridgate-receipt"])["capture"] == "captured"
        terms = service(h).terms.output_terms("claude-3-5-sonnet-latest")
        assert terms is not None and terms.training_use == "no_competing"


def test_a_native_responses_stream_is_captured_with_its_answer(tmp_path: Path) -> None:
    """The Responses API on the OpenAI route (native pass-through): streamed and plain,
    the teacher's answer text is captured (from the stream's output_text deltas)."""
    with triage_gateway(tmp_path) as h:
        client = h.openai(h.new_key(team="support"))
        rng = random.Random(11)
        asked: list[tuple[str, str]] = []
        for stream in (True, False, True):
            text = ticket(rng, with_contact=1.0)[0] + " please"
            create = client.responses.with_raw_response.create
            if stream:
                streamed = create(
                    model="task:ticket-triage", instructions=SYSTEM, input=text, stream=True
                )
                events = list(streamed.parse())
                deltas = [e.delta for e in events if isinstance(e, ResponseTextDeltaEvent)]
                answer = "".join(deltas)
                assert len(deltas) >= 1 and events[-1].type == "response.completed"
                headers = streamed.headers
            else:
                plain = create(model="task:ticket-triage", instructions=SYSTEM, input=text)
                answer, headers = plain.parse().output_text, plain.headers
            assert answer in {"billing", "technical", "account", "shipping"}
            body = _receipt(h, headers["x-hybridgate-receipt"])
            assert body["capture"] == "captured", body["capture"]
            asked.append((text, answer))
        assert all(req.path.endswith("/responses") for req in h.external.requests)
        settle(h)
        svc = service(h)
        examples = load_examples(svc.store, svc.sealer, "ticket-triage")
        assert [e.answer for e in examples] == [a for _, a in asked]
        for e, (text, _) in zip(examples, asked, strict=True):
            assert e.messages[0] == {"role": "system", "content": SYSTEM}
            assert e.messages[1]["role"] == "user" and "<EMAIL_ADDRESS" in e.messages[1]["content"]
            assert text.split()[-2] not in e.messages[1]["content"]  # the address stayed masked
