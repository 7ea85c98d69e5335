from decimal import Decimal
from pathlib import Path

import pytest

from ingest.config import ConfigError, load_config, parse_config

REPO = Path(__file__).resolve().parents[1]
ASSET = ("{host: dc1-a, site: dc1, gpu_model: H100 80GB, gpu_count: 8, purchase_price: 320000, "
         "purchase_date: 2026-01-01, rated_power_w_per_gpu: 700}")


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gpuledger.yaml"
    path.write_text(text)
    return path


def test_the_shipped_example_is_valid_and_resolves_relative_paths():
    cfg = load_config(REPO / "gpuledger.example.yaml")
    assert cfg.warehouse_path == REPO / "data" / "gpuledger.duckdb"
    assert cfg.resolve(cfg.sources.aws_cur[0].location) == "s3://my-billing-bucket/exports"
    assert cfg.resolve(cfg.sources.aws_cur[1].location) == str(REPO / "landing" / "billing" / "legacy-cur")
    assert cfg.sources.aws_cur[1].format == "legacy"
    assert cfg.token_weights.output == 2.5
    assert [w.name for w in cfg.workloads] == ["llama-70b-prod", "nightly-finetune", "embeddings-k8s"]
    assert cfg.workloads[2].match.pod == "embeddings-*"
    assert cfg.sources.nvidia_smi[0].timezone == "UTC"
    asset = cfg.on_prem.assets[0]
    assert (asset.resource, asset.gpu_count, asset.purchase_price) == ("gpu-node-07", 8, Decimal("320000"))
    assert cfg.on_prem.sites[asset.site].electricity_price_per_kwh == Decimal("0.11")
    assert cfg.teams["search"].monthly_budget == Decimal("25000")
    assert cfg.workloads[0].api_bases == ["http://llama-70b-prod.ml.svc:8000/*"]


def test_defaults_when_the_file_is_empty(tmp_path):
    cfg = load_config(write(tmp_path, ""))
    assert cfg.warehouse_path == tmp_path / "data" / "gpuledger.duckdb"
    assert (cfg.currency, cfg.shared_costs.policy) == ("USD", "proportional")
    assert cfg.billing.team_tags == ["user_team", "user:team", "team"]


def test_every_warehouse_connection_keeps_to_the_memory_limit(tmp_path):
    from orchestration.resources import GpuledgerResource

    default = GpuledgerResource(config_path=str(write(tmp_path, "")))
    with default.connect() as con:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "5.5 GiB"  # 6 GB
    small = GpuledgerResource(config_path=str(write(tmp_path, "memory_limit: 512MiB\n")))
    with small.connect() as con:
        assert con.execute("select current_setting('memory_limit')").fetchone()[0] == "512.0 MiB"


def test_path_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GPULEDGER_CONFIG", str(write(tmp_path, "currency: EUR\n")))
    assert load_config().currency == "EUR"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("warehose: x.duckdb\n", "warehose: unknown key"),
        ("sources:\n  aws_cur:\n    - location: a\n", "sources.aws_cur[0].export_name: Field required"),
        ("token_weights: {input: -1}\n", "token_weights.input: Input should be greater than or equal to 0"),
        ("shared_costs: {policy: evenly}\n", "shared_costs.policy: Input should be 'proportional' or 'unallocated'"),
        ("currency: dollars\n", "currency: String should match pattern"),
        ("memory_limit: lots\n", "memory_limit: String should match pattern"),
        ("workloads:\n  - {name: a, kind: serving, owner_team: x, match: {host: h}}\n", "workloads[0].kind"),
        ("workloads:\n  - {name: a, kind: inference, owner_team: x, match: {host: h}}\n",
         "an inference workload must list the models it serves"),
        ("workloads:\n  - {name: a, kind: batch, owner_team: x, match: {}}\n", "workloads[0].match"),
        ("teams: {unallocated: {}}\n", "teams: Value error, team names ['unallocated'] are reserved"),
        ("teams:\n  a: {api_keys: [k1]}\n  b: {api_keys: [k1]}\n", "api key 'k1' is mapped to both 'a' and 'b'"),
        ("sources:\n  engine_logs: [{location: l, timezone: Mars/Olympus}]\n",
         "sources.engine_logs[0].timezone: Value error, unknown time zone 'Mars/Olympus'"),
        ("teams: {a: {monthly_budget: -5}}\n", "teams.a.monthly_budget: Input should be greater than or equal to 0"),
        (f"on_prem:\n  assets: [{ASSET}]\n",
         "on_prem: Value error, assets[0] (dc1-a): site 'dc1' is not one of sites []"),
        (f"hosts: {{dc1-a: i-0abc}}\non_prem:\n  sites: {{dc1: {{electricity_price_per_kwh: 0.1}}}}\n"
         f"  assets: [{ASSET}]\n", "hosts ['dc1-a'] are on-prem assets: set their resource_id in on_prem.assets"),
        (f"on_prem:\n  sites: {{dc1: {{electricity_price_per_kwh: 0.1}}}}\n  assets: [{ASSET}, {ASSET}]\n",
         "each host may be registered once, repeated: ['dc1-a']"),
        ("- just\n- a list\n", "the top level must be a mapping"),
        ("teams: {a: [unclosed\n", "not valid YAML"),
    ],
)
def test_a_bad_config_fails_with_a_message_naming_the_key(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_a_yaml_error_quotes_the_line_it_is_on(tmp_path):
    """libyaml parses the file; its errors do not show the line, so the message comes from PyYAML's own parser."""
    path = write(tmp_path, "currency: USD\nteams: {a: [unclosed\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "line 2, column 12:\n    teams: {a: [unclosed\n" in str(err.value)


def test_a_config_is_parsed_again_when_its_text_changes(tmp_path):
    path = write(tmp_path, "currency: EUR\n")
    first = load_config(path)
    assert load_config(path) is first  # parsed once per process
    path.write_text("currency: GBP\n", encoding="utf-8")  # same size, maybe the same mtime tick
    assert load_config(path).currency == "GBP"


def test_a_missing_file_says_how_to_get_one(tmp_path):
    with pytest.raises(ConfigError, match=r"no configuration file at .*gpuledger demo"):
        load_config(tmp_path / "nope.yaml")


def test_s3_locations_pass_through_unresolved(tmp_path):
    cfg = parse_config({"sources": {"nvml": [{"location": "s3://bucket/telemetry"}]}}, tmp_path / "g.yaml")
    assert cfg.resolve(cfg.sources.nvml[0].location) == "s3://bucket/telemetry"
