"""The ``distill:`` config section: tasks, their output checks, capture rules and terms.

Strict pydantic models like the rest of the config. Capture is off unless a
task names the teams whose traffic it may capture; a teacher whose terms are
unknown is treated as forbidding capture (fail closed).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Task names are also the adapter's registry name: the registry's alphabet.
TASK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CheckConfig(_Strict):
    """How an answer of the task is judged: a label set, a JSON schema, or exact match."""

    kind: Literal["label_set", "json_schema", "exact"]
    labels: list[str] = Field(default_factory=list)
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")
    case_sensitive: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> CheckConfig:
        if self.kind == "label_set" and not self.labels:
            raise ValueError("check kind 'label_set' needs `labels`")
        if self.kind == "json_schema" and self.json_schema is None:
            raise ValueError("check kind 'json_schema' needs `schema`")
        return self


class CaptureConfig(_Strict):
    """Which traffic of a task may become training data. Off unless teams are listed."""

    teams: list[str] = Field(default_factory=list, description="teams whose traffic is captured")
    retention_days: float = Field(default=30.0, gt=0)
    purpose: str = Field(
        default="internal-task-model",
        description="declared use of the teacher's outputs, checked against its terms",
    )
    max_pairs: int = Field(default=20000, ge=1)
    competing: bool | None = Field(
        default=None,
        description="does the trained model compete with the teacher's provider? "
        "unanswered: terms that forbid competing uses refuse capture",
    )
    commercial: bool = Field(default=True, description="is the trained model used commercially")


class StudentConfig(_Strict):
    """The small base model adapters are trained for, and how the adapter is served."""

    base_model: str | None = Field(default=None, description="local path of the base model")
    device: str = "cpu"
    max_new_tokens: int = Field(default=16, ge=1)
    hourly_usd: float | None = Field(default=None, ge=0)
    tokens_per_second: float | None = Field(default=None, gt=0)


class TrainConfig(_Strict):
    seed: int = 0
    epochs: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=1e-2, gt=0)
    batch_size: int = Field(default=16, ge=1)
    rank: int = Field(default=8, ge=1)
    alpha: int = Field(default=16, ge=1)
    holdout: float = Field(default=0.2, gt=0, lt=1)
    #: modules trained in full and shipped with the adapter (PEFT ``modules_to_save``)
    modules_to_save: list[str] = Field(default_factory=list)
    cpu_threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads (default: torch's choice)"
    )
    target_modules: list[str] = Field(
        default_factory=lambda: [
            "q_proj",
            "k_proj",
            "v_proj",
            "o_proj",
            "gate_proj",
            "up_proj",
            "down_proj",
            "lm_head",
        ]
    )


class PromotionConfig(_Strict):
    canary_share: float = Field(default=0.25, gt=0, lt=1)
    #: comparisons needed before a stage is judged (advance or roll back)
    min_samples: int = Field(default=20, ge=1)
    #: share of adapter-served requests the teacher also answers, to keep measuring
    audit_share: float = Field(default=0.25, ge=0, le=1)
    auto_advance: bool = True


class TaskConfig(_Strict):
    """One narrow, repetitive task the gateway may move from a frontier model to an adapter."""

    model: str = Field(description="virtual model or route that answers the task today")
    check: CheckConfig
    quality_floor: float = Field(default=0.9, ge=0, le=1)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    promotion: PromotionConfig = Field(default_factory=PromotionConfig)


class TermsEntry(_Strict):
    """What a model's terms say about training other models on its outputs, and where."""

    model: str
    training_use: Literal[
        "allowed",
        "attribution_required",
        "derivative_inherits",
        "no_competing",
        "research_only",
        "restricted",
        "forbidden",
        "unknown",
    ] = "unknown"
    commercial_outputs: bool | None = None
    summary: str | None = None
    allowed_purposes: list[str] = Field(default_factory=list)
    forbidden_purposes: list[str] = Field(default_factory=list)
    source: str = Field(description="where the statement comes from (URL and clause)")


class DistillConfig(_Strict):
    tasks: dict[str, TaskConfig] = Field(default_factory=dict)
    #: output-use terms per model id; consulted when the catalog has none
    terms: list[TermsEntry] = Field(default_factory=list)
    #: where trained adapters are written (default HOME/adapters)
    adapters_dir: str | None = None

    @model_validator(mode="after")
    def _names(self) -> DistillConfig:
        for name in self.tasks:
            if not TASK_NAME.fullmatch(name):
                raise ValueError(f"task name {name!r}: lowercase letters, digits, _ - only")
        return self
