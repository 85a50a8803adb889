"""A task's output check: is an answer acceptable, and does it agree with a reference? Pure.

Three kinds, matching what narrow tasks produce:

* ``label_set`` - the answer, trimmed (and case-folded unless ``case_sensitive``),
  must be one of the labels; two answers agree when they name the same label;
* ``json_schema`` - the answer must parse as JSON and validate; two answers
  agree when they parse to equal values;
* ``exact`` - any answer is acceptable; agreement is string equality after trimming.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jsonschema

from hybridgate.distill.config import CheckConfig


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    #: the answer in the form comparisons use (label, parsed JSON, or trimmed text)
    normalized: Any
    reason: str | None = None


class OutputCheck:
    """Built once per task; ``judge`` and ``agree`` are pure."""

    def __init__(self, cfg: CheckConfig) -> None:
        self.cfg = cfg
        fold = (lambda s: s) if cfg.case_sensitive else str.casefold
        self._fold = fold
        self._labels = {fold(label.strip()): label for label in cfg.labels}
        self._validator: Any = None
        if cfg.kind == "json_schema":
            schema = cfg.json_schema or {}
            jsonschema.validators.validator_for(schema).check_schema(schema)
            self._validator = jsonschema.validators.validator_for(schema)(schema)

    def judge(self, answer: str | None) -> Verdict:
        if answer is None:
            return Verdict(False, None, "no answer")
        text = answer.strip()
        if self.cfg.kind == "label_set":
            label = self._labels.get(self._fold(text))
            if label is None:
                return Verdict(False, text, "not one of the task's labels")
            return Verdict(True, label)
        if self.cfg.kind == "json_schema":
            try:
                value = json.loads(text)
            except ValueError:
                return Verdict(False, text, "not valid JSON")
            errors = sorted(self._validator.iter_errors(value), key=lambda e: list(e.path))
            if errors:
                return Verdict(False, value, f"schema: {errors[0].message[:200]}")
            return Verdict(True, value)
        return Verdict(True, text)

    def agree(self, answer: str | None, reference: str | None) -> bool:
        """Whether ``answer`` is valid and says what the (valid) ``reference`` says."""
        a, r = self.judge(answer), self.judge(reference)
        return a.valid and r.valid and a.normalized == r.normalized

    def score(self, answer: str | None, reference: str | None) -> float:
        return 1.0 if self.agree(answer, reference) else 0.0
