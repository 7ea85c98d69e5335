"""The demo fleet generator: deterministic bytes, real formats, and a ground truth that adds up."""

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ingest.aws_cur_schema import CUR2_SCHEMA
from ingest.config import load_config
from ingest.demo_fleet import generate

SMALL = {"gpus": 19, "days": 1, "start": date(2026, 11, 30)}  # AWS p5 (SP), g5, g6 (spot); a GCP a2; an Azure NC


def digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("small")
    generate(out, seed=3, **SMALL)
    return out


def test_same_seed_same_bytes_other_seed_other_bytes(small, tmp_path):
    generate(tmp_path / "again", seed=3, **SMALL)
    generate(tmp_path / "other", seed=4, **SMALL)
    assert digests(tmp_path / "again") == digests(small)
    other = digests(tmp_path / "other")
    assert other.keys() == digests(small).keys()
    assert other != digests(small)


def test_the_generated_config_is_valid_and_points_at_the_files(small):
    cfg = load_config(small / "gpuledger.yaml")
    assert cfg.warehouse_path == small / "gpuledger.duckdb"
    assert Path(cfg.resolve(cfg.sources.nvml[0].location)).is_dir()
    assert {w.kind for w in cfg.workloads} == {"inference", "training", "batch"}


def test_cur_follows_the_cur2_schema_and_its_manifest(small):
    manifests = sorted(small.glob("billing/aws/*/metadata/BILLING_PERIOD=*/*-Manifest.json"))
    assert [m.parent.name for m in manifests] == ["BILLING_PERIOD=2026-11"]
    manifest = json.loads(manifests[0].read_text())
    (data_file,) = manifest["dataFiles"]
    assert data_file.startswith("s3://") and data_file.endswith(".snappy.parquet")
    local = small / "billing" / "aws" / data_file.split("/billing/aws/", 1)[1]
    table = pq.read_table(local)
    assert table.schema == CUR2_SCHEMA
    assert [c["name"] for c in manifest["columns"]] == CUR2_SCHEMA.names
    types = set(table["line_item_line_item_type"].to_pylist())
    assert types == {"Usage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "SavingsPlanRecurringFee",
                     "Credit", "Tax"}
    assert set(table["pricing_term"].drop_null().to_pylist()) >= {"OnDemand", "Spot"}


def test_ground_truth_period_totals_equal_the_bill(small):
    truth = json.loads((small / "ground_truth.json").read_text())
    (local,) = small.glob("billing/aws/*/data/BILLING_PERIOD=2026-11/*.parquet")
    rows = pq.read_table(local).to_pylist()

    def amortised(r: dict) -> float:  # AWS's rules, as the billing reference lists them
        return {
            "SavingsPlanCoveredUsage": r["savings_plan_savings_plan_effective_cost"],
            "SavingsPlanNegation": 0.0,
            "SavingsPlanRecurringFee": (r["savings_plan_total_commitment_to_date"] or 0)
            - (r["savings_plan_used_commitment"] or 0),
        }.get(r["line_item_line_item_type"], r["line_item_unblended_cost"])

    (period,) = (p for p in truth["billing_periods"] if p["provider"] == "AWS")
    assert period["billed_cost"] == pytest.approx(sum(r["line_item_unblended_cost"] for r in rows), abs=1e-6)
    assert period["effective_cost"] == pytest.approx(sum(amortised(r) for r in rows), abs=1e-6)
    every_provider = sum(p["effective_cost"] for p in truth["billing_periods"])
    assert sum(truth["categories"].values()) == pytest.approx(every_provider, abs=1e-4)


def test_telemetry_uses_the_nvml_field_names_of_the_real_h100_capture(small, samples):
    capture = (samples / "gpu-telemetry" / "h100-nvml-samples.jsonl").read_text().splitlines()
    real = [json.loads(ln) for ln in capture[1:]]  # line 1 is static device info
    real_keys = set().union(*(r.keys() for r in real)) - {"phase"}  # `phase` annotates the probe run
    (first,) = sorted(small.glob("telemetry/nvml/*/*/*.jsonl.gz"))[:1]
    ours = json.loads(gzip.decompress(first.read_bytes()).splitlines()[0])
    assert real_keys <= ours.keys()
    busy = [json.loads(ln) for f in sorted(small.glob("telemetry/nvml/p5-1/*/*.jsonl.gz"))[:1]
            for ln in gzip.decompress(f.read_bytes()).splitlines()]
    proc = next(p for s in busy for p in s["processes"])
    assert {"pid", "used_gpu_memory_bytes"} <= proc.keys()  # as nvmlDeviceGetComputeRunningProcesses gives


def test_gateway_lines_carry_openai_usage_objects(small):
    (log,) = sorted(small.glob("serving/gateway/*/*.jsonl.gz"))[:1]
    lines = [json.loads(ln) for ln in gzip.decompress(log.read_bytes()).splitlines()]
    usages = [ln["usage"] for ln in lines if ln["usage"]]
    assert all(u["total_tokens"] == u["prompt_tokens"] + u.get("completion_tokens", 0) for u in usages)
    assert any("prompt_tokens_details" in u for u in usages)
    assert any(ln["status"] >= 400 and ln["usage"] is None for ln in lines)
    assert any(ln.get("api_key_alias") is None for ln in lines)  # callers known only by their key hash
