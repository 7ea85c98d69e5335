"""The demo fleet's plan: instances, workloads, who holds which GPU when, and who calls which model.

Every writer (CUR, NVML, gateway) and the ground truth read this one plan, so the landing zone
and the expected answers cannot drift apart. Randomness comes from one seed split into named
streams, so the same seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

SAMPLE_SECONDS = 10
SAMPLES_PER_HOUR = 3600 // SAMPLE_SECONDS
IDLE = -1  # holder index of a GPU sample with no process on it

PAYER_ACCOUNT = ("123456789012", "gpuledger-demo-payer")
USAGE_ACCOUNT = ("210987654321", "ml-prod")
REGION = "us-east-1"
EXPORT_NAME = "gpuledger-cur2"
GCP_BILLING_ACCOUNT = "01A2B3-C4D5E6-F7A8B9"
GCP_PROJECT = "ml-prod-4821"
AZURE_BILLING_ACCOUNT = "/providers/Microsoft.Billing/billingAccounts/8611537"
AZURE_SUBSCRIPTION = "64e355d7-997c-491d-b0c1-8414dccfcf42"
ON_PREM = "On-Premises"  # the FOCUS ProviderName gpuledger gives the charges it makes from the asset register


@dataclass(frozen=True)
class InstanceType:
    name: str
    gpu_name: str
    gpu_count: int
    on_demand_rate: float  # USD per instance-hour, list price (us-east-1, us-central1, eastus)
    vcpu: int
    memory_gib: int
    gpu_tdp_w: float
    gpu_idle_w: float
    gpu_memory_bytes: int
    provider: str = "AWS"


INSTANCE_TYPES = {
    t.name: t
    for t in (
        InstanceType("p5.48xlarge", "NVIDIA H100 80GB HBM3", 8, 55.04, 192, 2048, 700, 79, 85520809984),
        InstanceType("g5.12xlarge", "NVIDIA A10G", 4, 5.672, 48, 192, 150, 16, 24146608128),
        InstanceType("g6.12xlarge", "NVIDIA L4", 4, 4.602, 48, 192, 72, 12, 24152899584),
        InstanceType("p4d.24xlarge", "NVIDIA A100-SXM4-40GB", 8, 21.96, 96, 1152, 400, 52, 42949672960),
        InstanceType("g6.xlarge", "NVIDIA L4", 1, 0.805, 4, 16, 72, 12, 24152899584),
        # GCP bills an a2 VM as GPU, core and RAM SKUs; this is their sum (see demo_fleet.gcp)
        InstanceType("a2-highgpu-2g", "NVIDIA A100-SXM4-40GB", 2, 7.34677, 24, 170, 400, 52, 42949672960,
                     "Google Cloud"),
        InstanceType("Standard_NC24ads_A100_v4", "NVIDIA A100 80GB PCIe", 1, 3.673, 24, 220, 300, 45,
                     85899345920, "Microsoft"),
        # an owned 4 x H100 SXM server: no cloud price, its cost comes from the config's asset register
        InstanceType("PowerEdge XE8640", "NVIDIA H100 80GB HBM3", 4, 0.0, 128, 1024, 700, 79, 85520809984,
                     ON_PREM),
    )
}
# The region each provider's bill names for the demo's resources (the grid intensity is looked up by it).
PROVIDER_REGIONS = {"AWS": REGION, "Google Cloud": "us-central1", "Microsoft": "eastus"}


@dataclass(frozen=True)
class OnPremSite:
    """The data centre of the demo's on-prem servers and what the asset register says of each server."""

    name: str = "dc1"
    pue: float = 1.3
    electricity_price_per_kwh: str = "0.12"
    grid_kg_co2e_per_kwh: float = 0.2
    gpu_model: str = "H100 80GB"  # the seed gpu_instance_types' name for the GPU, for the TCO comparison
    purchase_price: str = "140000"
    purchase_days_before_start: int = 60
    depreciation_months: int = 36
    rated_power_w_per_gpu: float = 700
    ops_cost_per_gpu_month: str = "150"


DC1 = OnPremSite()

SAVINGS_PLAN_DISCOUNT = 0.28  # a 1-year compute savings plan: effective rate = 72 % of on-demand
SPOT_DISCOUNT = (0.55, 0.70)  # spot price = on-demand x (1 - U(lo, hi)), redrawn every hour


@dataclass(frozen=True)
class Caller:
    """Who sends requests: the team they count for and what the gateway log shows of them."""

    team: str  # the team the config must resolve them to
    key_alias: str | None
    key_secret: str  # hashed into api_key_hash; never written anywhere in clear
    user: str | None = None
    metadata_team: str | None = None
    # set for callers whose requests go through the LiteLLM proxy (its spend logs, not the gateway log)
    litellm_team_id: str | None = None

    @property
    def key_hash(self) -> str:
        return "sha256:" + self.key_sha256

    @property
    def key_sha256(self) -> str:
        """The bare hex digest, as LiteLLM stores a virtual key (`api_key`)."""
        return hashlib.sha256(self.key_secret.encode()).hexdigest()


CALLERS = {
    "search-prod": Caller("search", "search-prod", "sk-demo-search-prod"),
    "search-batch": Caller("search", None, "sk-demo-search-batch"),  # the config knows only its hash
    "support-bot": Caller("support", "support-bot", "sk-demo-support-bot"),
    "research-nb": Caller("research", "research-nb", "sk-demo-research-nb"),
    "platform-eval": Caller("platform", "platform-eval", "sk-demo-platform-eval"),
    "playground-search": Caller("search", "playground", "sk-demo-playground", metadata_team="search"),
    "ci-runner": Caller("platform", "shared-ci", "sk-demo-shared-ci", user="ci-runner"),
    "unknown-1": Caller("unattributed", None, "sk-leaked-7f3a"),
    "unknown-2": Caller("unattributed", "old-hackathon", "sk-old-hackathon"),
    # through LiteLLM: its key alias is in no config, so the LiteLLM team id is its only identity
    "research-agents": Caller("research", "research-agents", "sk-demo-research-agents",
                              litellm_team_id="team-research"),
}


@dataclass(frozen=True)
class WorkloadSpec:
    base_name: str
    kind: str  # inference | training | batch
    owner_team: str
    models: tuple[str, ...]
    process_name: str
    callers: dict[str, float] = field(default_factory=dict)  # caller -> share of requests
    requests_per_hour: float = 0.0  # peak-hour mean
    prompt_tokens: tuple[float, float] = (6.5, 0.8)  # lognormal mu, sigma
    completion_tokens: tuple[float, float] = (5.3, 0.7)
    reports_cached_tokens: bool = True
    embedding: bool = False
    # LiteLLM callers reach this deployment by its own URL, and the config lists that URL (`api_bases`)
    own_api_base: bool = False


WORKLOADS = {
    w.base_name: w
    for w in (
        WorkloadSpec(
            "llama-70b", "inference", "platform", ("llama-3.1-70b-instruct",), "python3",
            {"search-prod": 0.35, "support-bot": 0.25, "platform-eval": 0.1, "playground-search": 0.08,
             "research-nb": 0.1, "unknown-1": 0.07, "ci-runner": 0.05, "research-agents": 0.1},
            requests_per_hour=140,
        ),
        WorkloadSpec("finetune", "training", "research", (), "pt_main_thread"),
        WorkloadSpec(
            "mistral-7b", "inference", "search", ("mistral-7b-instruct-v0.3",), "python3",
            {"search-prod": 0.55, "search-batch": 0.3, "unknown-2": 0.15},
            requests_per_hour=110, prompt_tokens=(6.0, 0.7), completion_tokens=(4.8, 0.6),
        ),
        WorkloadSpec(
            "embed", "inference", "search", ("bge-m3",), "python3",
            {"search-prod": 0.7, "search-batch": 0.3},
            requests_per_hour=90, prompt_tokens=(5.0, 0.6), completion_tokens=(0, 0),
            reports_cached_tokens=False, embedding=True,
        ),
        WorkloadSpec(
            "qwen-coder", "inference", "platform", ("qwen2.5-coder-7b-instruct", "qwen2.5-coder-7b-sql-lora"),
            "python3", {"platform-eval": 0.4, "ci-runner": 0.35, "research-nb": 0.25},
            requests_per_hour=80, reports_cached_tokens=False,
        ),
        WorkloadSpec("nightly-eval", "batch", "research", (), "eval_harness"),
        WorkloadSpec("pretrain", "training", "research", (), "pt_main_thread"),
        WorkloadSpec(
            "llama-8b", "inference", "support", ("llama-3.1-8b-instruct",), "python3",
            {"support-bot": 0.8, "unknown-1": 0.2}, requests_per_hour=60,
        ),
        WorkloadSpec(
            "mixtral", "inference", "research", ("mixtral-8x7b-instruct",), "python3",
            {"research-nb": 0.6, "platform-eval": 0.4}, requests_per_hour=70,
        ),
        WorkloadSpec("rl-finetune", "training", "support", (), "pt_main_thread"),
        # a second deployment of the p5's model on the owned server: pooled with it for requests that name
        # only the model, and the one that LiteLLM requests naming its URL are routed to
        WorkloadSpec(
            "onprem-llama-70b", "inference", "platform", ("llama-3.1-70b-instruct",), "python3",
            {"research-agents": 1.0}, requests_per_hour=50, own_api_base=True,
        ),
        WorkloadSpec("onprem-sft", "training", "research", (), "pt_main_thread"),
    )
}


@dataclass(frozen=True)
class Template:
    instance_type: str
    pricing: str  # on_demand | savings_plan | spot
    team_tag: str | None
    host_prefix: str
    # (workload base name, GPU indexes, schedule kind)
    roles: tuple[tuple[str, tuple[int, ...], str], ...]
    # window-relative hours in which the host's collector was down (only where the window has them all)
    outage_hours: frozenset[int] = frozenset()


TEMPLATES = (
    Template("p5.48xlarge", "savings_plan", None, "p5",
             (("llama-70b", (0, 1, 2, 3), "always"), ("finetune", (4, 5, 6, 7), "runs"))),
    Template("g5.12xlarge", "on_demand", "search", "g5",
             (("mistral-7b", (0, 1), "always"), ("embed", (2,), "always"), ("embed", (3,), "daytime"))),
    Template("a2-highgpu-2g", "committed_use", "research", "gcp-a2", (("mixtral", (0, 1), "always"),)),
    Template("Standard_NC24ads_A100_v4", "on_demand", "support", "az-nc", (("rl-finetune", (0,), "runs"),)),
    Template("g6.12xlarge", "spot", "platform", "g6",
             (("qwen-coder", (0, 1), "always"), ("nightly-eval", (2,), "nightly")), frozenset({34, 35, 36})),
    Template("p4d.24xlarge", "on_demand", "research", "p4d",
             (("pretrain", tuple(range(8)), "weekend_off"),)),
    # after the cloud templates, so that fleets of up to 27 GPUs stay as they were; 31 GPUs hold all seven.
    # Its team tag is the asset register's team (idle time); its outage falls in the daytime, between
    # the overnight runs, so the hours without telemetry are metered at rated power.
    Template("PowerEdge XE8640", "owned", "platform", "dc1-h100",
             (("onprem-llama-70b", (0, 1), "always"), ("onprem-sft", (2, 3), "overnight")), frozenset({38, 39})),
)
FILLER = Template("g6.xlarge", "on_demand", None, "g6x", (("llama-8b", (0,), "always"),))


@dataclass
class Workload:
    name: str
    spec: WorkloadSpec
    models: tuple[str, ...]
    host_pattern: str

    @property
    def api_base(self) -> str | None:
        """The URL LiteLLM logs for requests it sends straight to this deployment."""
        return f"http://{self.host_pattern}:8000/v1" if self.spec.own_api_base else None


@dataclass
class Instance:
    resource_id: str  # as the provider's bill names it: EC2 instance id, GCP global name, Azure ARM id
    host: str
    itype: InstanceType
    pricing: str
    team_tag: str | None
    volume_id: str
    # holders[g] is an int16 array over the window's samples: workload index or IDLE
    holders: list[np.ndarray]
    # hours (window-relative) in which the collector on this host was down
    outage_hours: frozenset[int] = frozenset()

    def gpu_uuid(self, gpu: int) -> str:
        h = hashlib.sha256(f"{self.resource_id}/{gpu}".encode()).hexdigest()
        return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


@dataclass
class Plan:
    start: datetime
    days: int
    seed: int
    instances: list[Instance]
    workloads: list[Workload]
    savings_plan_arn: str
    savings_plan_commitment: float  # USD per hour

    @property
    def hours(self) -> int:
        return self.days * 24

    def hour_start(self, hour: int) -> datetime:
        return self.start + timedelta(hours=hour)

    def instance_of(self, workload: int) -> Instance:
        """The instance a workload runs on (each demo workload lives on one host)."""
        host = self.workloads[workload].host_pattern
        return next(i for i in self.instances if i.host == host)


def rng_for(seed: int, stream: str) -> np.random.Generator:
    """An independent random stream per purpose, so changing one writer never shifts another."""
    return np.random.default_rng([seed, int.from_bytes(hashlib.sha256(stream.encode()).digest()[:8], "big")])


def hex_id(rng: np.random.Generator, n: int) -> str:
    return rng.integers(0, 256, size=(n + 1) // 2).astype(np.uint8).tobytes().hex()[:n]


def _resource_id(itype: InstanceType, host: str, ids: np.random.Generator) -> str:
    if itype.provider == "Google Cloud":
        instance = int(ids.integers(10**18))
        return f"//compute.googleapis.com/projects/{GCP_PROJECT}/zones/us-central1-a/instances/{instance}"
    if itype.provider == "Microsoft":
        group = f"/subscriptions/{AZURE_SUBSCRIPTION}/resourceGroups/ml-prod"
        return f"{group}/providers/Microsoft.Compute/virtualMachines/{host}"
    if itype.provider == ON_PREM:  # no cloud resource id: the asset register names the server by its host
        return host
    return f"i-0{hex_id(ids, 16)}"


def _templates_for(gpus: int) -> list[Template]:
    chosen: list[Template] = []
    left, i = gpus, 0
    while left > 0:
        t = TEMPLATES[i % len(TEMPLATES)]
        if INSTANCE_TYPES[t.instance_type].gpu_count > left:
            t = FILLER
        chosen.append(t)
        left -= INSTANCE_TYPES[t.instance_type].gpu_count
        i += 1
    return chosen


GANG_SCHEDULED = frozenset({"overnight"})


def _schedule(kind: str, plan_hours: int, rng: np.random.Generator, start: datetime) -> np.ndarray:
    """A boolean array over the window's samples: True where the workload holds the GPU."""
    n = plan_hours * SAMPLES_PER_HOUR
    held = np.zeros(n, dtype=bool)
    sample_hour_of_day = (np.arange(n) // SAMPLES_PER_HOUR + start.hour) % 24
    if kind == "always":
        held[:] = True
    elif kind == "daytime":  # scaled down from 22:00 to 06:00 UTC
        held[(sample_hour_of_day >= 6) & (sample_hour_of_day < 22)] = True
    elif kind == "nightly":  # a batch run from 01:00 for 3-4.5 hours every night
        for day_start in range(0, n, 24 * SAMPLES_PER_HOUR):
            begin = day_start + SAMPLES_PER_HOUR + int(rng.integers(0, 60))
            held[begin : begin + int(rng.integers(3 * SAMPLES_PER_HOUR, 4.5 * SAMPLES_PER_HOUR))] = True
    elif kind == "runs":  # fine-tuning runs of 6-30 h with idle gaps of 2-20 h between them
        t = int(rng.integers(0, 4 * SAMPLES_PER_HOUR))
        while t < n:
            length = int(rng.integers(6 * SAMPLES_PER_HOUR, 30 * SAMPLES_PER_HOUR))
            held[t : t + length] = True
            t += length + int(rng.integers(2 * SAMPLES_PER_HOUR, 20 * SAMPLES_PER_HOUR))
    elif kind == "overnight":  # a job on spare GPUs from 19:00-21:00 for 10-13 h: every run crosses midnight
        for day_start in range(0, n, 24 * SAMPLES_PER_HOUR):
            begin = day_start + 19 * SAMPLES_PER_HOUR + int(rng.integers(0, 2 * SAMPLES_PER_HOUR))
            held[begin : begin + int(rng.integers(10 * SAMPLES_PER_HOUR, 13 * SAMPLES_PER_HOUR))] = True
    elif kind == "weekend_off":  # runs all week, forgotten and idle over the window's first weekend
        held[:] = True
        weekday = np.array([(start + timedelta(hours=h)).weekday() for h in range(plan_hours)])
        weekend = np.flatnonzero(weekday >= 5)
        if weekend.size:
            first = last = int(weekend[0])
            while last + 1 < plan_hours and weekday[last + 1] >= 5:
                last += 1
            held[first * SAMPLES_PER_HOUR : (last + 1) * SAMPLES_PER_HOUR] = False
    else:
        raise ValueError(f"unknown schedule kind {kind}")
    return held


def build_plan(gpus: int, days: int, seed: int, start: date) -> Plan:
    if gpus < 1 or days < 1:
        raise ValueError("a fleet needs at least one GPU and one day")
    start_dt = datetime(start.year, start.month, start.day, tzinfo=UTC)
    hours = days * 24
    ids = rng_for(seed, "ids")
    sched_rng = rng_for(seed, "schedules")

    workloads: list[Workload] = []
    instances: list[Instance] = []
    repeats: dict[str, int] = {}
    for t in _templates_for(gpus):
        itype = INSTANCE_TYPES[t.instance_type]
        k = repeats[t.host_prefix] = repeats.get(t.host_prefix, 0) + 1
        host = f"{t.host_prefix}-{k}"
        holders = [np.full(hours * SAMPLES_PER_HOUR, IDLE, dtype=np.int16) for _ in range(itype.gpu_count)]
        for base, gpu_indexes, kind in t.roles:
            name = base if k == 1 else f"{base}-{k}"
            spec = WORKLOADS[base]
            if not any(w.name == name for w in workloads):
                models = spec.models if k == 1 else tuple(f"{m}-r{k}" for m in spec.models)
                workloads.append(Workload(name, spec, models, host))
            idx = next(i for i, w in enumerate(workloads) if w.name == name)
            # a distributed job starts and stops on all its GPUs together; other roles draw per GPU
            gang = _schedule(kind, hours, sched_rng, start_dt) if kind in GANG_SCHEDULED else None
            for g in gpu_indexes:
                held = gang if gang is not None else _schedule(kind, hours, sched_rng, start_dt)
                holders[g][held] = idx
        outage = t.outage_hours if t.outage_hours and hours > max(t.outage_hours) else frozenset()
        instances.append(
            Instance(_resource_id(itype, host, ids), host, itype, t.pricing, t.team_tag, f"vol-0{hex_id(ids, 16)}",
                     holders, outage)
        )

    covered = sum(i.itype.on_demand_rate for i in instances if i.pricing == "savings_plan")
    return Plan(
        start=start_dt,
        days=days,
        seed=seed,
        instances=instances,
        workloads=workloads,
        savings_plan_arn=f"arn:aws:savingsplans::{PAYER_ACCOUNT[0]}:savingsplan/{hex_id(ids, 8)}-"
        f"{hex_id(ids, 4)}-{hex_id(ids, 4)}-{hex_id(ids, 4)}-{hex_id(ids, 12)}",
        # committed slightly above what the covered instances use, so some commitment goes unused
        savings_plan_commitment=round(covered * (1 - SAVINGS_PLAN_DISCOUNT) + 0.37, 2) if covered else 0.0,
    )
