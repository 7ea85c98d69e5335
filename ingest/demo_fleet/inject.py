"""Anomalies planted in the demo fleet for the spend detector to find, and where they are.

Each is made only where the window is long enough for the detector to judge it, so the short
fleets the other tests use keep their exact bytes. Neither draws from the fleet's random streams
(the thinning of the traffic drop has its own), so everything else is as it would be without them:

- an egress spike: on window day 11 the first g5 instance (tagged search) sends 10,000 GB out to
  the internet in one hour, on top of its usual egress: +10,000 x 0.09 = 900.00 USD on its
  AWSDataTransfer line of that hour (windows of at least 12 days);
- a traffic drop: from window day 8 the p5's llama-70b deployment gets 40 % of its requests while
  it keeps its four GPUs, so the model's fully-loaded cost per 1M tokens rises week over week
  (windows of at least 14 days: the first day the 7-vs-7 rule can judge is day 13);
- the p4d's idle weekend (schedule weekend_off) is part of every fleet with a p4d; only labelled.

ground_truth.json lists them under `injected_anomalies` (see truth.injected_anomalies).
"""

from __future__ import annotations

from dataclasses import dataclass

from ingest.demo_fleet.plan import TEMPLATES, Instance, Plan

SPIKE_DAY = 11  # window day (0-based)
SPIKE_HOUR_OF_DAY = 14  # UTC
SPIKE_GB = 10_000.0
SPIKE_HOST_PREFIX = "g5"  # its first instance: tagged search
DROP_DAY = 8
DROP_FACTOR = 0.4  # share of the deployment's requests that still arrive
DROP_WORKLOAD = "llama-70b"  # the p5's deployment, the first template's: in every fleet of 8 GPUs or more
SPIKE_MIN_DAYS = SPIKE_DAY + 1
DROP_MIN_DAYS = DROP_DAY + 6  # 14: the last day, 13, is the first the week-over-week rule judges
WEEKEND_IDLE_PREFIXES = frozenset(t.host_prefix for t in TEMPLATES if any(k == "weekend_off" for *_, k in t.roles))


@dataclass(frozen=True)
class EgressSpike:
    instance: Instance
    hour: int  # window hour of the AWSDataTransfer line that carries it
    gb: float


@dataclass(frozen=True)
class TrafficDrop:
    workload: int  # index into plan.workloads
    first_hour: int  # window hour from which only `factor` of its requests arrive
    factor: float


def egress_spike(plan: Plan) -> EgressSpike | None:
    if plan.days < SPIKE_MIN_DAYS:
        return None
    inst = next((i for i in plan.instances if i.host == f"{SPIKE_HOST_PREFIX}-1"), None)
    return EgressSpike(inst, SPIKE_DAY * 24 + SPIKE_HOUR_OF_DAY, SPIKE_GB) if inst else None


def traffic_drop(plan: Plan) -> TrafficDrop | None:
    if plan.days < DROP_MIN_DAYS:
        return None
    wi = next((i for i, w in enumerate(plan.workloads) if w.name == DROP_WORKLOAD), None)
    return TrafficDrop(wi, DROP_DAY * 24, DROP_FACTOR) if wi is not None else None


def weekend_idle_instances(plan: Plan) -> list[Instance]:
    """The instances whose job is off over the window's first weekend (the p4d)."""
    return [i for i in plan.instances if i.host.rsplit("-", 1)[0] in WEEKEND_IDLE_PREFIXES]
