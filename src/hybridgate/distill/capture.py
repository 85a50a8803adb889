"""Whether one finished exchange may become a training pair, and the pair itself. Pure.

The rules, in the order they are checked (the first that fails names the reason):

1. the exchange was answered by the teacher (not refused, not the adapter itself);
2. capture is on for the caller's team (it is off unless the task lists the team);
3. the scan was complete and found no secret, and the policy's action was
   ``allow`` or ``redact`` - on-prem-only data never leaves the request path;
4. the teacher's terms allow the task's declared purpose, or an operator
   recorded an override (itself a receipt).

What is captured is what was sent upstream and what came back before the
gateway restored anything: masked values stay placeholders, never originals.
A final re-scan of the pair (in the service) refuses any pair in which the
scanner still finds something.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from hybridgate.distill.config import TaskConfig, TermsEntry
from hybridgate.distill.terms import judge_terms
from hybridgate.ledger.canonical import canonical_json
from hybridgate.policy.model import Action
from hybridgate.scan.findings import DataClass

CAPTURED = "captured"


@dataclass(frozen=True, slots=True)
class ExchangeFacts:
    """What capture needs to know of a finished exchange (filled by the service)."""

    team: str | None
    outcome: str
    served_by_adapter: bool
    scan_complete: bool | None
    data_classes: tuple[str, ...]
    action: str | None
    teacher_model: str | None
    has_answer: bool


@dataclass(frozen=True, slots=True)
class CaptureDecision:
    capture: bool
    reason: str
    terms: TermsEntry | None = None
    override: str | None = None  # receipt id of the operator's override

    @property
    def status(self) -> str:
        return CAPTURED if self.capture else "skipped: " + self.reason


def decide_capture(
    task: TaskConfig,
    facts: ExchangeFacts,
    terms: TermsEntry | None,
    override: str | None = None,
) -> CaptureDecision:
    if facts.outcome != "ok" or not facts.has_answer:
        return CaptureDecision(False, "no answer to capture")
    if facts.served_by_adapter:
        return CaptureDecision(False, "answered by the adapter, not the teacher")
    if not facts.team or facts.team not in task.capture.teams:
        return CaptureDecision(False, f"capture is off for team {facts.team or '(none)'!r}")
    if facts.scan_complete is not True:
        return CaptureDecision(False, "the request was not completely scanned")
    if DataClass.SECRET.value in facts.data_classes:
        return CaptureDecision(False, "the request held a secret")
    if facts.action not in (Action.ALLOW.value, Action.REDACT.value):
        return CaptureDecision(False, f"policy action {facts.action!r} keeps the data out")
    model = facts.teacher_model or ""
    verdict = judge_terms(
        terms,
        model,
        task.capture.purpose,
        competing=task.capture.competing,
        commercial=task.capture.commercial,
    )
    if not verdict.allowed:
        if override is not None:
            return CaptureDecision(True, "operator override: " + verdict.reason, terms, override)
        return CaptureDecision(False, verdict.reason, terms)
    return CaptureDecision(True, verdict.reason, terms)


def pair_record(
    messages: list[dict[str, Any]], answer: str, teacher_model: str, salt: str | None = None
) -> dict[str, Any]:
    """The captured pair. The random salt keeps its hash (in the receipt) from being a
    dictionary oracle for short answers."""
    return {
        "messages": messages,
        "answer": answer,
        "teacher_model": teacher_model,
        "salt": salt if salt is not None else secrets.token_hex(16),
    }


def pair_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(canonical_json(record)).hexdigest()


def chat_messages_of(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The role/content messages of a request as sent upstream: Chat Completions, a
    Messages request (its ``system`` first) or a Responses request (its
    ``instructions`` and ``input``); None when other parts (tools, images, tool calls)
    make it more than a text task."""
    if body.get("tools"):
        return None
    if "input" in body and "messages" not in body:
        items = body["input"]
        if isinstance(items, str):  # Responses' shorthand for one user message
            items = [{"role": "user", "content": items}]
        return _messages(body.get("instructions"), items, _RESPONSES_PARTS)
    return _messages(body.get("system"), body.get("messages"), ("text",))


_ROLES = ("system", "developer", "user", "assistant")
_RESPONSES_PARTS = ("input_text", "output_text")


def _text_of(content: Any, kinds: tuple[str, ...]) -> str | None:
    """A message's text: a string, or a list of text parts of ``kinds`` joined."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        return None
    texts: list[str] = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") not in kinds:
            return None  # an image, a file, audio, a tool call
        if not isinstance(part.get("text"), str):
            return None
        texts.append(part["text"])
    return "".join(texts)


def _messages(system: Any, items: Any, kinds: tuple[str, ...]) -> list[dict[str, Any]] | None:
    out: list[dict[str, Any]] = []
    if system is not None:
        text = _text_of(system, kinds)
        if text is None:
            return None
        out.append({"role": "system", "content": text})
    if not isinstance(items, list):
        return None
    for item in items:
        if not isinstance(item, dict) or item.get("type", "message") != "message":
            return None  # a tool call, its output, reasoning: more than a text task
        text = _text_of(item.get("content"), kinds)
        if item.get("role") not in _ROLES or text is None:
            return None
        out.append({"role": item["role"], "content": text})
    return out
