"""The one configuration file, `gpuledger.yaml`, validated before any work starts.

Relative paths in the file are relative to the file's own folder, so a landing zone and its
config can be moved together.
"""

from __future__ import annotations

import functools
import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CONFIG_ENV_VAR = "GPULEDGER_CONFIG"
DEFAULT_CONFIG_PATH = Path("gpuledger.yaml")

UNATTRIBUTED = "unattributed"
UNALLOCATED = "unallocated"
RESERVED_TEAMS = {UNATTRIBUTED, UNALLOCATED}


class ConfigError(ValueError):
    """The config file is missing, unreadable or invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AwsCurSource(_Strict):
    """An AWS cost and usage report and its manifests.

    cur2: Data Exports, `<location>/<export_name>/{data,metadata}/BILLING_PERIOD=YYYY-MM/...`;
    legacy: `<location>/<export_name>/<yyyymmdd-yyyymmdd>/<export_name>-Manifest.json` (the report name).
    """

    location: str = Field(description="Folder or s3://bucket/prefix that holds the export folder")
    export_name: str
    format: Literal["cur2", "legacy"] = "cur2"


class FileSource(_Strict):
    location: str = Field(description="Folder or s3://bucket/prefix to read files from")


def _iana_zone(zone: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {zone!r} (use an IANA name like Europe/Berlin)") from None
    return zone


TimeZone = Annotated[str, AfterValidator(_iana_zone)]


class NvidiaSmiSource(_Strict):
    """nvidia-smi CSV files under `<location>/<host>/...`."""

    location: str
    timezone: TimeZone = Field("UTC", description="the hosts' local time zone: nvidia-smi writes local time")
    fields: list[str] = Field([], description="the --query-gpu fields, for output written with noheader")


class EngineLogSource(_Strict):
    """vLLM, TGI, TEI and SGLang server logs under `<location>/<deployment>/...`: the first folder
    names the workload (deployment) that wrote them."""

    location: str
    timezone: TimeZone = Field("UTC", description="the servers' local time zone: vLLM writes local time without a zone")


# The tools whose GPU telemetry gpuledger reads (`sources.nvml`, `.nvidia_smi`, `.dcgm`).
TELEMETRY_TOOLS = ("nvml", "nvidia-smi", "dcgm")


class Sources(_Strict):
    aws_cur: list[AwsCurSource] = []
    gcp_billing: list[FileSource] = Field([], description="GCP detailed export extracts (JSONL or Parquet)")
    focus: list[FileSource] = Field([], description="FOCUS 1.0-1.3 exports of any provider (CSV or Parquet)")
    azure_cost_details: list[FileSource] = []
    oci_cost_reports: list[FileSource] = []
    nvml: list[FileSource] = Field([], description="gpuledger collector files under <location>/<host>/...")
    nvidia_smi: list[NvidiaSmiSource] = []
    dcgm: list[FileSource] = Field([], description="dcgm-exporter scrapes under <location>/<host>/...")
    gateway: list[FileSource] = []
    litellm: list[FileSource] = Field([], description="LiteLLM_SpendLogs exports (CSV or JSONL)")
    engine_logs: list[EngineLogSource] = []
    vllm_metrics: list[FileSource] = Field([], description="vLLM /metrics scrapes under <location>/<deployment>/...")


class Team(_Strict):
    api_keys: list[str] = Field(default=[], description="API key aliases or sha256 hashes")
    users: list[str] = []
    litellm_team_ids: list[str] = []
    monthly_budget: Decimal | None = Field(None, ge=0, description="in the config's currency")


class WorkloadMatch(_Strict):
    """What a workload's GPU holders look like. Text fields are shell-style patterns (`*`, `?`);
    every field given must match. A holder is a process on a GPU (NVML collector, nvidia-smi) or a
    pod on a GPU or MIG instance (dcgm-exporter)."""

    host: str | None = None
    gpu_index: list[int] = Field([], description="the GPUs of the host, by index")
    gpu_uuid: str | None = None
    process_name: str | None = None
    container_id: str | None = None
    pod_uid: str | None = None
    pod: str | None = Field(None, description="Kubernetes pod name (dcgm-exporter's pod label)")
    namespace: str | None = None
    container: str | None = Field(None, description="Kubernetes container name (dcgm-exporter's label)")
    env: dict[str, str] = {}

    @model_validator(mode="after")
    def _not_empty(self) -> WorkloadMatch:
        if not any(v for v in self.model_dump().values()):
            raise ValueError("give at least one of host, gpu_index, gpu_uuid, process_name, container_id, "
                             "pod_uid, pod, namespace, container, env")
        return self


class Workload(_Strict):
    name: str
    kind: Literal["inference", "training", "batch"]
    owner_team: str
    models: list[str] = []
    api_bases: list[str] = Field([], description="the URLs a gateway or LiteLLM logs as `api_base` for this "
                                 "deployment (shell-style patterns)")
    match: WorkloadMatch

    @model_validator(mode="after")
    def _inference_serves_models(self) -> Workload:
        if self.kind == "inference" and not self.models:
            raise ValueError("an inference workload must list the models it serves")
        return self


class TokenWeights(_Strict):
    """Relative GPU cost of one token of each kind; only the ratios matter.

    Defaults follow OpenCost's 1 : 2.5 prefill : decode ratio; a cached prompt token skips
    prefill but still occupies KV cache and attention, hence a small non-zero weight.
    """

    input: float = Field(1.0, ge=0)
    cached_input: float = Field(0.1, ge=0)
    output: float = Field(2.5, ge=0)


class SharedCosts(_Strict):
    policy: Literal["proportional", "unallocated"] = "proportional"


class Energy(_Strict):
    """Cloud GPUs' energy: the provider's PUE and the grid's carbon intensity, per region where given."""

    pue: float = Field(1.2, ge=1.0, le=3.0)
    grid_kg_co2e_per_kwh: float = Field(0.385, ge=0)
    grid_kg_co2e_per_kwh_by_region: dict[str, float] = Field(
        {}, description="billing region id (us-east-1, us-central1, eastus) -> kg CO2e per kWh")


class Site(_Strict):
    """A data centre or server room that holds on-prem GPUs."""

    pue: float = Field(1.4, ge=1.0, le=3.0)
    electricity_price_per_kwh: Decimal = Field(ge=0)
    grid_kg_co2e_per_kwh: float = Field(0.385, ge=0)


class OnPremAsset(_Strict):
    """A GPU server: its purchase is amortised straight-line, its energy metered from telemetry."""

    host: str
    resource_id: str | None = Field(None, description="the id its charges and telemetry carry; default: the host")
    site: str
    gpu_model: str = Field(description="as in the seed gpu_instance_types (e.g. 'H100 80GB'), for the TCO comparison")
    gpu_count: int = Field(ge=1)
    purchase_price: Decimal = Field(ge=0)
    purchase_date: date
    depreciation_months: int = Field(36, ge=1)
    rated_power_w_per_gpu: float = Field(gt=0, description="used for hours without energy telemetry")
    ops_cost_per_gpu_month: Decimal = Field(Decimal(0), ge=0, description="staff, support, colocation")
    team: str | None = Field(None, description="the team idle and unmonitored hours are charged to")
    in_service_until: date | None = None

    @property
    def resource(self) -> str:
        return self.resource_id or self.host


class OnPrem(_Strict):
    sites: dict[str, Site] = {}
    assets: list[OnPremAsset] = []

    @model_validator(mode="after")
    def _known_sites_and_hosts(self) -> OnPrem:
        for i, a in enumerate(self.assets):
            if a.site not in self.sites:
                raise ValueError(f"assets[{i}] ({a.host}): site {a.site!r} is not one of sites {sorted(self.sites)}")
        hosts = [a.host for a in self.assets]
        dupes = sorted({h for h in hosts if hosts.count(h) > 1})
        if dupes:
            raise ValueError(f"each host may be registered once, repeated: {dupes}")
        return self


class Billing(_Strict):
    team_tags: list[str] = Field(
        ["user_team", "user:team", "team"],
        description="tag (label) keys whose value names a resource's team, the first present wins: CUR 2.0 "
        "writes user_team, FOCUS exports user:team, GCP labels and Azure tags team",
        min_length=1,
    )


class TeamResolution(_Strict):
    metadata_field: str | None = Field("team", description="request metadata field that names a team")


class Slack(_Strict):
    """Where alerts go. Secrets never live in this file: only the names of the environment
    variables that hold them. A bot token is preferred (threads, no secret in a URL)."""

    webhook_url_env: str = Field("GPULEDGER_SLACK_WEBHOOK_URL", description="env var holding an incoming-webhook URL")
    bot_token_env: str = Field("GPULEDGER_SLACK_BOT_TOKEN", description="env var holding a bot token (xoxb-...)")
    channel: str | None = Field(None, description="channel for chat.postMessage (bot token only)")
    base_url: str | None = Field(None, description="Slack API base URL; for tests and proxies")


class Detector(_Strict):
    """The daily spend detector (see README, Anomalies): robust baseline, modified z, dollar gates."""

    z: float = Field(3.5, gt=0, description="store a day whose modified z-score reaches this")
    min_history_days: int = Field(7, ge=2, description="below this a scope gets only a new-spend notice")
    new_scope_min: float = Field(200.0, ge=0, description="a new scope's first full day at least this is noticed")
    digest_min_impact: float = Field(50.0, ge=0)
    digest_min_relative: float = Field(0.20, ge=0, description="bench/anomalies.py: 0.10 sent a third more "
                                       "false alerts for the same recall")
    immediate_z: float = Field(5.0, gt=0)
    immediate_min_impact: float = Field(250.0, ge=0)
    immediate_min_relative: float = Field(0.20, ge=0)


class Alerts(_Strict):
    slack: Slack = Slack()
    dagster_ui_url: str = Field("http://127.0.0.1:3000", description="links in messages point here")
    evaluation_delay_hours: int = Field(36, ge=0, description="a day is judged once its end is this old")
    detector: Detector = Detector()
    idle_gpu_utilization_below: float = Field(0.05, ge=0, le=1)
    idle_gpu_consecutive_hours: int = Field(12, ge=1)
    cost_per_token_week_over_week: float = Field(0.25, gt=0, description="a rise of more than this fraction alerts")
    close_after_normal_days: int = Field(3, ge=1)
    new_baseline_after_days: int = Field(7, ge=2)


class Config(_Strict):
    warehouse: Path = Path("data/gpuledger.duckdb")
    memory_limit: str = Field(
        "6GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory limit for ingestion and for dbt; past it DuckDB spills to "
                    "<warehouse>.tmp. DuckDB's own default, 80 % of RAM, let a 1,000-GPU day grow to 16 GiB")
    daily_build_rows: int = Field(
        20_000_000, ge=1,
        description="the most raw telemetry and request rows one dbt build of the daily models reads; more days "
                    "(a backfill, history rebuilt) are built a run of days at a time, a larger day a slice of its "
                    "GPUs at a time. A 1,000-GPU day is about 16 M rows: one build, within the default memory_limit")
    published: Path | None = Field(None, description="folder of the analysts' Parquet marts and catalog; "
                                   "default: `published` beside the warehouse")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$")
    sources: Sources = Sources()
    teams: dict[str, Team] = {}
    team_resolution: TeamResolution = TeamResolution()
    billing: Billing = Billing()
    hosts: dict[str, str] = Field({}, description="host name -> billing resource id")
    workloads: list[Workload] = []
    token_weights: TokenWeights = TokenWeights()
    shared_costs: SharedCosts = SharedCosts()
    energy: Energy = Energy()
    on_prem: OnPrem = OnPrem()
    alerts: Alerts = Alerts()

    # Set by load_config: the folder relative paths are resolved against.
    base_dir: Path = Field(Path("."), exclude=True)

    @field_validator("teams")
    @classmethod
    def _no_reserved_team_names(cls, teams: dict[str, Team]) -> dict[str, Team]:
        clash = RESERVED_TEAMS & set(teams)
        if clash:
            raise ValueError(f"team names {sorted(clash)} are reserved for unmatched cost")
        return teams

    @model_validator(mode="after")
    def _one_team_per_identity(self) -> Config:
        seen: dict[tuple[str, str], str] = {}
        for team, t in self.teams.items():
            for kind, values in (("api key", t.api_keys), ("user", t.users), ("LiteLLM team id", t.litellm_team_ids)):
                for value in values:
                    other = seen.setdefault((kind, value), team)
                    if other != team:
                        raise ValueError(f"{kind} {value!r} is mapped to both {other!r} and {team!r}")
        return self

    @model_validator(mode="after")
    def _unique_workloads(self) -> Config:
        names = [w.name for w in self.workloads]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"workload names must be unique, repeated: {dupes}")
        return self

    @model_validator(mode="after")
    def _on_prem_hosts_not_mapped_twice(self) -> Config:
        clash = sorted(a.host for a in self.on_prem.assets if a.host in self.hosts and self.hosts[a.host] != a.resource)
        if clash:
            raise ValueError(f"hosts {clash} are on-prem assets: set their resource_id in on_prem.assets")
        return self

    def resolve(self, location: str | Path) -> str:
        """A source location or path as an absolute path (s3:// URIs pass through)."""
        text = str(location)
        if text.startswith("s3://"):
            return text
        path = Path(text).expanduser()
        return str(path if path.is_absolute() else (self.base_dir / path).resolve())

    @property
    def warehouse_path(self) -> Path:
        return Path(self.resolve(self.warehouse))

    @property
    def published_path(self) -> Path:
        """Where analysts read the marts (ingest/publish.py): beside the warehouse by default."""
        return Path(self.resolve(self.published)) if self.published else self.warehouse_path.parent / "published"


def config_path_from_env() -> Path:
    return Path(os.environ.get(CONFIG_ENV_VAR, DEFAULT_CONFIG_PATH))


def _format_error(path: Path, err: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for e in err.errors():
        key = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e["loc"]).lstrip(".")
        msg = "unknown key" if e["type"] == "extra_forbidden" else e["msg"]
        lines.append(f"  {key or '(top level)'}: {msg}")
    return "\n".join(lines)


def parse_config(data: object, path: Path) -> Config:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    try:
        return Config.model_validate({**data, "base_dir": path.parent.resolve()})
    except ValidationError as err:
        raise ConfigError(_format_error(path, err)) from None


def _read_yaml(text: str) -> object:
    """libyaml's parser where PyYAML has it (a 10,000-GPU fleet's config: 2.2 s in pure Python,
    0.7 s); the pure-Python one for a file libyaml rejects, whose message quotes the offending line."""
    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return yaml.safe_load(text)


def load_config(path: Path | None = None) -> Config:
    path = Path(path) if path else config_path_from_env()
    if not path.is_file():
        raise ConfigError(
            f"no configuration file at {path}. Set {CONFIG_ENV_VAR} to your gpuledger.yaml, "
            "copy gpuledger.example.yaml, or run `gpuledger demo` to generate a demo fleet with its config."
        )
    return _config_of(path, path.parent.resolve(), path.read_text(encoding="utf-8"))


@functools.lru_cache(maxsize=4)
def _config_of(path: Path, folder: Path, text: str) -> Config:
    """The config a file's text gives, parsed once per process: each run parses it when its
    resources start (three runs for a day in one `gpuledger run`) and a sensor at every tick; a
    10,000-GPU fleet's took 0.9 s. Config is frozen, so the one object can be shared. `folder` (the
    file's, resolved) is part of the key: the locations in the text are relative to it."""
    try:
        data = _read_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    return parse_config(data, path)
