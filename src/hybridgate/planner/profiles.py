"""Typical organizations as data: their volume, workloads, hardware and licence needs.

A profile states who the user is (how many users a licence must allow, the
openness they require of models they run), what hardware they would run
(GPU type, rent per GPU-hour — an assumption, printed with every result), and
their typical workloads. Each workload has a tier — where quality alone would
send it — and says whether its data must stay on hardware the organization
runs. Where it actually goes is decided by :mod:`hybridgate.planner.recommend`
from the costs at the user's volume and the user's constraints.

Preference lists put stronger models first, from their public reputation at
release; that ordering is the one judgment here not derived from the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Tier = Literal["frontier", "self_hosted", "small_tuned"]
TIERS: tuple[Tier, ...] = ("frontier", "self_hosted", "small_tuned")


@dataclass(frozen=True)
class WorkloadSpec:
    name: str
    tier: Tier
    share: float  # of the profile's monthly requests
    input_tokens: int
    output_tokens: int
    why: str
    #: its data may not leave hardware the organization runs, whatever the cost
    must_stay: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    summary: str
    volume: int  # requests per month, all workloads
    users: int  # monthly active users the licence must allow
    min_openness: int  # for models it runs itself
    gpu: str
    gpu_hourly_usd: float  # assumption, stated
    max_gpus: int  # per replica
    workloads: tuple[WorkloadSpec, ...]
    #: in order of preference; retired and deprecated ids are passed over (see the catalog)
    frontier: tuple[str, ...] = (
        "claude-sonnet-5-5",
        "claude-sonnet-4-5",
        "gpt-5",
        "gemini-2.5-pro",
        "gpt-4o",
    )
    #: the API a narrow task would otherwise go to: the small model's cost yardstick
    cheap_api: tuple[str, ...] = (
        "gpt-5-mini",
        "gpt-4o-mini",
        "gemini-2.5-flash",
        "claude-haiku-4-5",
    )
    self_hosted: tuple[str, ...] = ("gpt-oss-120b", "qwen2.5-72b", "llama-3-70b", "mixtral-8x7b")
    small: tuple[str, ...] = ("qwen2.5-7b", "gpt-oss-20b", "llama-3-8b", "mistral-7b", "olmo-2-7b")
    strict_classes: tuple[str, ...] = ()
    teams: tuple[str, ...] = ("default",)
    team_budget_usd: float | None = None
    strong_share: float = 0.3
    #: the small tuned model gets its own, smaller card (assumption, stated)
    small_gpu: str = "L4"
    small_gpu_hourly_usd: float = 0.8
    #: defaults for the constraints (the CLI can switch them on)
    no_external: bool = False
    fine_tune: bool = True
    redistribute: bool = False
    fine_tune_examples: int = 10_000
    peak_factor: float = 1.0

    def gpu_for(self, tier: Tier) -> tuple[str, float]:
        if tier == "small_tuned":
            return self.small_gpu, self.small_gpu_hourly_usd
        return self.gpu, self.gpu_hourly_usd


_W = WorkloadSpec
PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile(
            name="mvp",
            summary="a first version with a handful of users: pay per use, no hardware",
            volume=30_000,
            users=1_000,
            min_openness=2,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=1,
            workloads=(
                _W("the product's main feature", "frontier", 0.6, 1500, 500, "quality sells"),
                _W("summaries and drafts", "self_hosted", 0.3, 2000, 400, "bulk, cheaper model"),
                _W("tagging", "small_tuned", 0.1, 500, 20, "narrow"),
            ),
            fine_tune=False,
        ),
        Profile(
            name="solo",
            summary="one developer or a very small team, low volume, one workstation GPU",
            volume=20_000,
            users=1,
            min_openness=2,
            gpu="RTX 4090",
            gpu_hourly_usd=0.0,
            max_gpus=1,
            workloads=(
                _W("hard reasoning and code", "frontier", 0.4, 3000, 800, "quality matters most"),
                _W(
                    "private notes and drafts",
                    "self_hosted",
                    0.4,
                    1500,
                    400,
                    "stays on the box",
                    must_stay=True,
                ),
                _W("autocomplete and tagging", "small_tuned", 0.2, 500, 50, "narrow and frequent"),
            ),
            self_hosted=("gpt-oss-20b", "qwen2.5-7b", "llama-3-8b", "mistral-7b"),
            small=("qwen2.5-7b", "llama-3-8b", "mistral-7b"),
            team_budget_usd=50.0,
            strong_share=0.5,
            small_gpu="RTX 4090",
            small_gpu_hourly_usd=0.0,
        ),
        Profile(
            name="startup",
            summary="a product start-up: one assistant feature, every request 500 in / 1,000 out",
            volume=10_000_000,
            users=200_000,
            min_openness=2,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=8,
            workloads=(
                _W("hard user questions", "frontier", 0.1, 500, 1000, "quality on the long tail"),
                _W("the assistant", "self_hosted", 0.7, 500, 1000, "cost at volume"),
                _W("rewrites and short answers", "small_tuned", 0.2, 500, 1000, "narrow, tuned"),
            ),
            teams=("product",),
            strong_share=0.1,
        ),
        Profile(
            name="midsize",
            summary="a 50–500 person company: internal assistants, documents, some sensitive data",
            volume=500_000,
            users=500,
            min_openness=2,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=2,
            workloads=(
                _W("hard analysis and code", "frontier", 0.2, 3000, 800, "quality matters most"),
                _W("internal documents and chat", "self_hosted", 0.6, 2000, 400, "bulk, internal"),
                _W("classification and extraction", "small_tuned", 0.2, 800, 60, "narrow, tuned"),
            ),
            teams=("engineering", "operations", "sales"),
            team_budget_usd=2_000.0,
        ),
        Profile(
            name="enterprise",
            summary="a Fortune 500 company under strict data residency: nothing leaves its sites",
            volume=50_000_000,
            users=100_000,
            min_openness=3,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=8,
            workloads=(
                _W("analysis and code", "frontier", 0.15, 3000, 800, "quality", must_stay=True),
                _W(
                    "employee assistant",
                    "self_hosted",
                    0.6,
                    2000,
                    500,
                    "internal data",
                    must_stay=True,
                ),
                _W(
                    "document processing",
                    "small_tuned",
                    0.25,
                    1500,
                    100,
                    "narrow, tuned",
                    must_stay=True,
                ),
            ),
            self_hosted=("gpt-oss-120b", "deepseek-r1", "mixtral-8x7b", "olmo-2-13b"),
            small=("gpt-oss-20b", "qwen2.5-7b", "olmo-2-7b", "mistral-7b"),
            strict_classes=("person", "contact", "financial", "health", "government_id"),
            teams=("engineering", "finance", "hr", "legal"),
            no_external=True,
            strong_share=0.15,
        ),
        Profile(
            name="regulated",
            summary="health, finance or public sector: personal data must not leave, audits",
            volume=1_000_000,
            users=5_000,
            min_openness=3,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=4,
            workloads=(
                _W("public research, no personal data", "frontier", 0.1, 3000, 800, "quality"),
                _W(
                    "case files and records",
                    "self_hosted",
                    0.7,
                    3000,
                    500,
                    "personal data",
                    must_stay=True,
                ),
                _W(
                    "form extraction and coding",
                    "small_tuned",
                    0.2,
                    1000,
                    80,
                    "narrow, tuned",
                    must_stay=True,
                ),
            ),
            self_hosted=("gpt-oss-120b", "mixtral-8x7b", "olmo-2-13b"),
            small=("qwen2.5-7b", "olmo-2-7b", "mistral-7b"),
            strict_classes=("person", "contact", "financial", "health", "government_id"),
            teams=("clinical", "back-office"),
            team_budget_usd=3_000.0,
            strong_share=0.1,
        ),
        Profile(
            name="consulting",
            summary="client work: each client's material is confidential, costs billed per client",
            volume=300_000,
            users=200,
            min_openness=2,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=2,
            workloads=(
                _W("public research and writing", "frontier", 0.4, 3000, 1000, "quality"),
                _W(
                    "client documents",
                    "self_hosted",
                    0.5,
                    4000,
                    600,
                    "client confidentiality",
                    must_stay=True,
                ),
                _W("timesheets and tagging", "small_tuned", 0.1, 600, 40, "narrow, tuned"),
            ),
            strict_classes=("org_confidential", "person"),
            teams=("client-a", "client-b", "internal"),
            team_budget_usd=1_500.0,
            strong_share=0.4,
        ),
        Profile(
            name="finetune",
            summary="a product built on heavy fine-tuning: tuned models shipped to customers",
            volume=5_000_000,
            users=1_000_000,
            min_openness=3,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=8,
            workloads=(
                _W("hard cases", "frontier", 0.05, 2000, 600, "quality on the long tail"),
                _W("general assistant", "self_hosted", 0.25, 1500, 400, "cost at volume"),
                _W("the tuned domain model", "small_tuned", 0.7, 1200, 300, "the product itself"),
            ),
            self_hosted=("gpt-oss-120b", "deepseek-r1", "mixtral-8x7b", "qwen2.5-72b"),
            small=("qwen2.5-7b", "gpt-oss-20b", "mistral-7b", "olmo-2-7b", "llama-3-8b"),
            teams=("product",),
            strong_share=0.05,
            redistribute=True,
            fine_tune_examples=1_000_000,
        ),
        Profile(
            name="product",
            summary="an LLM feature inside a product with many end users: cost at volume, licence",
            volume=20_000_000,
            users=50_000_000,
            min_openness=3,
            gpu="H100 80GB",
            gpu_hourly_usd=2.5,
            max_gpus=8,
            workloads=(
                _W("hard user questions", "frontier", 0.05, 2000, 600, "quality on the long tail"),
                _W("general assistant", "self_hosted", 0.55, 1500, 400, "cost at volume"),
                _W("the product's narrow task", "small_tuned", 0.4, 800, 100, "volume, latency"),
            ),
            self_hosted=("gpt-oss-120b", "deepseek-r1", "mixtral-8x7b", "qwen2.5-72b"),
            small=("qwen2.5-7b", "mistral-7b", "gpt-oss-20b", "llama-3-8b"),
            teams=("product",),
            strong_share=0.05,
        ),
    )
}
