"""Configuration: one validated object the app factory is built from.

Strict pydantic models (unknown keys are errors), ``${ENV}`` interpolation so
provider keys never sit in the file, and error messages that name the file,
the key path and what is wrong.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hybridgate.distill.config import DistillConfig
from hybridgate.errors import ConfigError
from hybridgate.policy.model import Openness, PolicyConfig

Location = Literal["on_prem", "external"]
#: The provider kinds built in; a :class:`~hybridgate.providers.registry.ProviderRegistry`
#: passed to ``create_app`` can add more (an unknown kind fails when the app is built).
ProviderKind = Literal["openai", "anthropic", "openai_compat", "local", "vllm", "lorax", "llamacpp"]
BUILTIN_PROVIDERS: tuple[str, ...] = get_args(ProviderKind)
Strategy = Literal["fixed", "fallback", "least_cost", "least_latency", "weighted", "quality"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(_Strict):
    """USD per million tokens, or an hourly cost apportioned per token for self-hosted routes."""

    input_per_mtok: float = Field(default=0.0, ge=0)
    output_per_mtok: float = Field(default=0.0, ge=0)
    hourly_usd: float | None = Field(default=None, ge=0, description="self-hosted: cost per hour")
    tokens_per_second: float | None = Field(
        default=None, gt=0, description="self-hosted: sustained throughput the hour is spread over"
    )

    @model_validator(mode="after")
    def _hourly_needs_throughput(self) -> Price:
        if self.hourly_usd is not None and self.tokens_per_second is None:
            raise ValueError("hourly_usd needs tokens_per_second to apportion it per token")
        return self


class LocalModel(_Strict):
    """In-process transformers model (optional extra ``local``)."""

    model_path: str
    adapter_path: str | None = None
    device: str = "cpu"
    max_new_tokens: int = Field(default=256, ge=1)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    max_batch: int = Field(default=8, ge=1, le=512, description="rows decoded together")
    adapter_memory_mb: float = Field(
        default=256.0, gt=0, description="budget for LoRA weights in memory (LRU eviction)"
    )
    max_adapters: int = Field(default=16, ge=1, description="adapters in memory at once")


class RouteConfig(_Strict):
    """One concrete upstream: a provider, a model on it, where it runs and what it costs."""

    name: str = Field(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")
    provider: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,39}$",
        description="openai | anthropic | openai_compat | local, or a registered kind",
    )
    model: str = Field(description="model id sent upstream")
    base_url: str | None = None
    api_key: str | None = Field(default=None, repr=False)
    location: Location
    region: str | None = None
    licence: str | None = None
    openness: Openness | None = None
    price: Price = Field(default_factory=Price)
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    weight: float = Field(default=1.0, ge=0, description="for the weighted strategy")
    embeddings: bool = False
    max_output_tokens: int | None = Field(
        default=None,
        ge=1,
        description="the most completion tokens this route can bill for one answer "
        "(bounds budget reservations for requests without max_tokens)",
    )
    local: LocalModel | None = None
    headers: dict[str, str] = Field(default_factory=dict, repr=False)
    lora_slots: int = Field(
        default=4, ge=1, description="vllm: adapters loaded at once (the server's --max-loras)"
    )
    adapters: list[str] | None = Field(
        default=None,
        description="registered adapters this route may serve ('*': any on its base); "
        "clients address them as '<route or model>:<adapter>'",
    )

    @model_validator(mode="after")
    def _provider_fields(self) -> RouteConfig:
        if self.provider == "local" and self.local is None:
            raise ValueError("provider 'local' needs a `local:` section with model_path")
        if self.provider in ("openai_compat", "vllm", "lorax", "llamacpp") and not self.base_url:
            raise ValueError(f"provider '{self.provider}' needs base_url")
        return self


class VirtualModel(_Strict):
    """A name clients call (``auto``, ``fast`` ...) mapped to routes and a strategy."""

    routes: list[str] = Field(min_length=1)
    strategy: Strategy = "fallback"
    #: quality strategy: the frontier and the cheaper route
    strong: str | None = None
    weak: str | None = None
    strong_share: float | None = Field(default=None, ge=0, le=1)
    quality_floor: float | None = Field(default=None, ge=0, le=1)
    router: str | None = Field(default=None, description="path to a trained router file")

    @model_validator(mode="after")
    def _quality_fields(self) -> VirtualModel:
        if self.strategy == "quality":
            if not self.strong or not self.weak:
                raise ValueError("strategy 'quality' needs `strong` and `weak` route names")
            if self.strong_share is None and self.quality_floor is None:
                self.strong_share = 0.5
        return self


class ScannerConfig(_Strict):
    terms: list[str] = Field(default_factory=list, description="org-confidential deny-list")
    terms_file: str | None = None
    disabled: list[str] = Field(default_factory=list, description="detector names to disable")
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "DE", "FR"])
    cache_max_entries: int = Field(
        default=8192, ge=0, description="scan-result cache entries (0 turns the cache off)"
    )
    cache_max_mb: float = Field(default=64.0, ge=0, description="scan-result cache memory bound")


class BudgetConfig(_Strict):
    """Limits for one key (by key id) or one team. Unset fields are unlimited."""

    scope: Literal["key", "team"]
    name: str
    usd_per_day: float | None = Field(default=None, ge=0)
    usd_per_month: float | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    tokens_per_month: int | None = Field(default=None, ge=0)
    requests_per_minute: int | None = Field(default=None, ge=0)
    tokens_per_minute: int | None = Field(default=None, ge=0)


class LedgerConfig(_Strict):
    origin: str = Field(default="hybridgate.local/receipts", description="checkpoint origin line")
    checkpoint_interval_s: float = Field(default=10.0, gt=0)
    commit_interval_ms: float = Field(
        default=0.0,
        ge=0,
        description="extra wait to gather a group commit; 0 batches whatever queued meanwhile",
    )
    max_batch: int = Field(default=512, ge=1)
    durability: Literal["power_loss", "process_crash"] = "power_loss"


class ActionsConfig(_Strict):
    hold_timeout_s: float = Field(default=300.0, gt=0)
    receipt_ttl_s: float = Field(default=300.0, gt=0)
    executor_url: str | None = None
    approvers_dir: str | None = Field(
        default=None, description="approver public keys: <name>.pub, one verifier-key string each"
    )


class StoreConfig(_Strict):
    """Where state lives. ``sqlite`` (default): one file under ``home``, one process.
    ``postgres``: every worker and replica shares one database (``dsn``); rate limits and the
    console's sign-in throttle are shared through Redis (``redis_url``) and the receipt log
    through one elected sequencer."""

    kind: Literal["sqlite", "postgres"] = "sqlite"
    dsn: str | None = Field(default=None, repr=False, description="PostgreSQL connection string")
    pool_size: int = Field(default=8, ge=1, le=256)
    redis_url: str | None = Field(
        default=None,
        repr=False,
        description="Redis for rate limits and the console sign-in throttle shared by all replicas",
    )
    redis_prefix: str = Field(default="hybridgate:", max_length=64)
    max_merge_delay_s: float = Field(
        default=10.0, gt=0, description="shared log: promised time within which a leaf is merged"
    )
    sequencer_interval_ms: float = Field(default=50.0, gt=0)

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> StoreConfig:
        if self.kind == "postgres" and not self.dsn:
            raise ValueError("store.kind postgres needs store.dsn")
        return self


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, ge=0, le=65535)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    admin_key: str | None = Field(default=None, repr=False)
    log_level: str = "info"
    #: A connection whose request line and headers are not complete by then is closed.
    header_timeout_s: float = Field(default=10.0, gt=0)
    #: A request body not complete by then (from its first byte) is answered 408.
    body_timeout_s: float = Field(default=30.0, gt=0)
    #: Scanning: bodies up to ``scan_inline_bytes`` scan on the event loop; larger ones on
    #: a pool of ``scan_workers`` threads with at most ``scan_queue`` waiting (503 beyond).
    scan_inline_bytes: int = Field(default=32 * 1024, ge=0)
    #: A body up to this size whose messages the scan cache mostly holds (at most
    #: ``scan_inline_bytes`` of it new) scans on the event loop too: an agent's next turn.
    #: 0: every body over ``scan_inline_bytes`` goes to the pool.
    scan_inline_seen_bytes: int = Field(default=512 * 1024, ge=0)
    scan_workers: int = Field(default=2, ge=1, le=64)
    scan_queue: int = Field(default=32, ge=0)
    #: The per-request scan budget: more bytes than this are refused (413) unscanned, and a
    #: scan still running after ``scan_timeout_s`` is refused (503); nothing is sent.
    max_scan_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    scan_timeout_s: float = Field(default=10.0, gt=0)


class ConversationsConfig(_Strict):
    """Responses API state the gateway keeps (``store: true``), sealed at rest."""

    retention_days: float = Field(
        default=30.0, gt=0, description="stored turns are unreadable and purged after this"
    )


class ConsoleConfig(_Strict):
    """The web console (docs/console.md): sign-in attempts allowed per client address,
    ``signin_burst`` at once, then ``signin_per_minute`` (429 beyond)."""

    signin_burst: int = Field(default=10, ge=1, le=10_000)
    signin_per_minute: float = Field(default=6.0, gt=0)


class GatewayConfig(_Strict):
    """Everything the app factory needs. ``home`` holds the database and keys."""

    home: str = Field(default_factory=lambda: os.environ.get("HYBRIDGATE_HOME", "~/.hybridgate"))
    database: str | None = Field(default=None, description="SQLite path; default HOME/gateway.db")
    server: ServerConfig = Field(default_factory=ServerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    routes: list[RouteConfig] = Field(default_factory=list)
    models: dict[str, VirtualModel] = Field(default_factory=dict)
    policy: PolicyConfig = Field(default_factory=PolicyConfig)
    policy_file: str | None = None
    governance_file: str | None = Field(
        default=None,
        description="approvers and threshold for policy changes (docs/governance.md);"
        " when set, only policies approved by M of N approvers load",
    )
    scanner: ScannerConfig = Field(default_factory=ScannerConfig)
    budgets: list[BudgetConfig] = Field(default_factory=list)
    ledger: LedgerConfig = Field(default_factory=LedgerConfig)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    conversations: ConversationsConfig = Field(default_factory=ConversationsConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    aliases: dict[str, str] = Field(
        default_factory=dict,
        description="model name or glob (claude-*, gpt-*, o*) -> virtual model or route; "
        "first match in order wins, exact names always win",
    )
    catalog: list[dict[str, Any]] = Field(
        default_factory=list,
        description="extra model catalog entries (hybridgate.planner.catalog schema)",
    )
    distill: DistillConfig = Field(default_factory=DistillConfig)

    @model_validator(mode="after")
    def _references(self) -> GatewayConfig:
        names = [r.name for r in self.routes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate route names: {', '.join(dupes)}")
        known = set(names)
        for vname, vm in self.models.items():
            for ref in [*vm.routes, vm.strong, vm.weak]:
                if ref is not None and ref not in known:
                    raise ValueError(f"models.{vname} names unknown route {ref!r}")
        for tname, task in self.distill.tasks.items():
            if task.model not in known and task.model not in self.models:
                raise ValueError(f"distill.tasks.{tname} names unknown model {task.model!r}")
        for pattern, target in self.aliases.items():
            if target not in self.models and target not in known:
                raise ValueError(f"aliases.{pattern} names unknown model or route {target!r}")
        return self

    @property
    def home_path(self) -> Path:
        return Path(self.home).expanduser()

    @property
    def database_path(self) -> Path:
        return Path(self.database).expanduser() if self.database else self.home_path / "gateway.db"

    def route(self, name: str) -> RouteConfig:
        for r in self.routes:
            if r.name == name:
                return r
        raise KeyError(name)

    def virtual_model(self, name: str) -> VirtualModel | None:
        """A configured virtual model, or an implicit ``fixed`` one for a bare route name."""
        if name in self.models:
            return self.models[name]
        if any(r.name == name for r in self.routes):
            return VirtualModel(routes=[name], strategy="fixed")
        return None


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate_env(value: Any, env: dict[str, str], path: str = "") -> Any:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in every string; a missing name is an error."""
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")

        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {
            k: interpolate_env(v, env, f"{path}.{k}" if path else str(k)) for k, v in value.items()
        }
    if isinstance(value, list):
        return [interpolate_env(v, env, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _format_validation(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def load_policy_file(path: Path) -> PolicyConfig:
    """Load and validate a standalone policy file (YAML, optionally under a `policy:` key)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read policy: {exc}") from exc
    if isinstance(raw, dict) and set(raw) == {"policy"}:
        raw = raw["policy"]
    try:
        return PolicyConfig.model_validate(interpolate_env(raw, dict(os.environ), "policy"))
    except ValidationError as exc:
        raise ConfigError(_format_validation(str(path), exc)) from exc


def parse_config(
    raw: Any, *, source: str = "<config>", env: dict[str, str] | None = None
) -> GatewayConfig:
    """Validate already-parsed YAML/JSON data into a :class:`GatewayConfig`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: top level must be a mapping")
    data = interpolate_env(raw, dict(os.environ) if env is None else env)
    try:
        cfg = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_validation(source, exc)) from exc
    if cfg.policy_file:
        if "policy" in raw:
            raise ConfigError(f"{source}: policy: and policy_file: are exclusive")
        pf = Path(cfg.policy_file).expanduser()
        if not pf.is_absolute() and source not in ("<config>", "<defaults>"):
            pf = Path(source).parent / pf
        cfg = cfg.model_copy(update={"policy": load_policy_file(pf)})
    return cfg


def load_config(path: str | Path, env: dict[str, str] | None = None) -> GatewayConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML: {exc}") from exc
    return parse_config(raw, source=str(p), env=env)


def config_schema() -> dict[str, Any]:
    return GatewayConfig.model_json_schema()
