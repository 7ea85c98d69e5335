"""The parts of gpuledger.yaml that SQL needs, as small tables in the warehouse's `config` schema.

dbt reads these as sources, so changing a team mapping or a token weight and re-running the
models re-attributes history without re-ingesting any file.
"""

from __future__ import annotations

import pyarrow as pa

from ingest.config import Config
from ingest.prices import MONEY


def _table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def settings_table(cfg: Config) -> pa.Table:
    schema = pa.schema([
        ("currency", pa.string()), ("metadata_team_field", pa.string()),
        ("shared_cost_policy", pa.string()), ("token_weight_input", pa.float64()),
        ("token_weight_cached_input", pa.float64()), ("token_weight_output", pa.float64()),
        ("pue", pa.float64()), ("grid_kg_co2e_per_kwh", pa.float64()),
        ("idle_gpu_utilization_below", pa.float64()), ("idle_gpu_consecutive_hours", pa.int32()),
    ])
    return _table([{
        "currency": cfg.currency,
        "metadata_team_field": cfg.team_resolution.metadata_field,
        "shared_cost_policy": cfg.shared_costs.policy,
        "token_weight_input": cfg.token_weights.input,
        "token_weight_cached_input": cfg.token_weights.cached_input,
        "token_weight_output": cfg.token_weights.output,
        "pue": cfg.energy.pue,
        "grid_kg_co2e_per_kwh": cfg.energy.grid_kg_co2e_per_kwh,
        "idle_gpu_utilization_below": cfg.alerts.idle_gpu_utilization_below,
        "idle_gpu_consecutive_hours": cfg.alerts.idle_gpu_consecutive_hours,
    }], schema)


def team_tag_keys_table(cfg: Config) -> pa.Table:
    schema = pa.schema([("tag_key", pa.string()), ("priority", pa.int32())])
    return _table([{"tag_key": k, "priority": i} for i, k in enumerate(cfg.billing.team_tags)], schema)


def team_identities_table(cfg: Config) -> pa.Table:
    """(identity kind, value, team): API key aliases or hashes, users and LiteLLM team ids."""
    schema = pa.schema([("identity_kind", pa.string()), ("identity_value", pa.string()), ("team", pa.string())])
    rows = []
    for team, t in cfg.teams.items():
        rows += [{"identity_kind": "api_key", "identity_value": k, "team": team} for k in t.api_keys]
        rows += [{"identity_kind": "user", "identity_value": u, "team": team} for u in t.users]
        rows += [{"identity_kind": "litellm_team", "identity_value": i, "team": team} for i in t.litellm_team_ids]
    rows += [{"identity_kind": "team", "identity_value": team, "team": team} for team in cfg.teams]
    return _table(rows, schema)


def workloads_table(cfg: Config) -> pa.Table:
    schema = pa.schema([("workload", pa.string()), ("workload_kind", pa.string()), ("owner_team", pa.string()),
                        ("model_count", pa.int32())])
    return _table([{"workload": w.name, "workload_kind": w.kind, "owner_team": w.owner_team,
                    "model_count": len(w.models)} for w in cfg.workloads], schema)


def workload_models_table(cfg: Config) -> pa.Table:
    schema = pa.schema([("workload", pa.string()), ("model", pa.string())])
    return _table([{"workload": w.name, "model": m} for w in cfg.workloads for m in w.models], schema)


def workload_api_bases_table(cfg: Config) -> pa.Table:
    schema = pa.schema([("workload", pa.string()), ("api_base_pattern", pa.string())])
    return _table([{"workload": w.name, "api_base_pattern": b} for w in cfg.workloads for b in w.api_bases], schema)


def hosts_table(cfg: Config) -> pa.Table:
    """Configured hosts and on-prem assets: an asset's telemetry carries its resource id."""
    schema = pa.schema([("host", pa.string()), ("resource_id", pa.string())])
    hosts = cfg.hosts | {a.host: a.resource for a in cfg.on_prem.assets}
    return _table([{"host": h, "resource_id": r} for h, r in sorted(hosts.items())], schema)


def team_budgets_table(cfg: Config) -> pa.Table:
    schema = pa.schema([("team", pa.string()), ("monthly_budget", MONEY), ("currency", pa.string())])
    return _table([{"team": team, "monthly_budget": t.monthly_budget, "currency": cfg.currency}
                   for team, t in cfg.teams.items() if t.monthly_budget is not None], schema)


def grid_regions_table(cfg: Config) -> pa.Table:
    schema = pa.schema([("region_id", pa.string()), ("grid_kg_co2e_per_kwh", pa.float64())])
    return _table([{"region_id": r, "grid_kg_co2e_per_kwh": v}
                   for r, v in sorted(cfg.energy.grid_kg_co2e_per_kwh_by_region.items())], schema)


def on_prem_assets_table(cfg: Config) -> pa.Table:
    """One row per on-prem server, with its site's PUE, electricity price and grid intensity."""
    schema = pa.schema([
        ("host", pa.string()), ("resource_id", pa.string()), ("site", pa.string()), ("gpu_model", pa.string()),
        ("gpu_count", pa.int32()), ("purchase_price", MONEY), ("purchase_date", pa.date32()),
        ("depreciation_months", pa.int32()), ("rated_power_w_per_gpu", pa.float64()),
        ("ops_cost_per_gpu_month", MONEY), ("team", pa.string()), ("in_service_until", pa.date32()),
        ("pue", pa.float64()), ("electricity_price_per_kwh", MONEY), ("grid_kg_co2e_per_kwh", pa.float64()),
        ("currency", pa.string()),
    ])
    rows = []
    for a in cfg.on_prem.assets:
        site = cfg.on_prem.sites[a.site]
        rows.append(a.model_dump(exclude={"resource_id"}) | site.model_dump()
                    | {"resource_id": a.resource, "currency": cfg.currency})
    return _table(rows, schema)


CONFIG_TABLES = {
    "settings": settings_table,
    "team_identities": team_identities_table,
    "team_tag_keys": team_tag_keys_table,
    "workloads": workloads_table,
    "workload_models": workload_models_table,
    "workload_api_bases": workload_api_bases_table,
    "hosts": hosts_table,
    "team_budgets": team_budgets_table,
    "grid_regions": grid_regions_table,
    "on_prem_assets": on_prem_assets_table,
}
