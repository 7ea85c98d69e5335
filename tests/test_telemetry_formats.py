"""The same fleet with its GPU hosts writing gpuledger's collector files, nvidia-smi CSV or
dcgm-exporter scrapes: every reader must land the same GPU-hours, and the unit economics must
still match the generator's ground truth."""

import json
from datetime import date

import pytest
from pipeline import failed_checks, materialize_all, query, unit_economics_mismatches

from ingest.config import TELEMETRY_TOOLS, load_config
from ingest.demo_fleet import generate

# A p5 deployment, g5 and g6 deployments (the g6 with a collector outage), an idle p4d and the
# GCP and Azure VMs, over one day.
FLEET = {"gpus": 13, "days": 1, "seed": 5, "start": date(2026, 11, 3)}


@pytest.fixture(scope="module")
def fleets(tmp_path_factory):
    runs = {}
    for telemetry in TELEMETRY_TOOLS:
        out = tmp_path_factory.mktemp(telemetry)
        generated = generate(out, **FLEET, telemetry=telemetry)
        result = materialize_all(generated.config_path)
        assert result.success, f"the pipeline failed on {telemetry} telemetry"
        runs[telemetry] = {"warehouse": load_config(generated.config_path).warehouse_path, "result": result,
                           "truth": json.loads((out / "ground_truth.json").read_text())}
    return runs


def occupancy(warehouse) -> list[tuple]:
    return query(warehouse, """
        select resource_id, gpu_index, hour_start, coalesce(workload, 'idle'), held_samples, busy_samples
        from intermediate.int_gpu_hour_occupancy order by all""")


def observed(warehouse) -> list[tuple]:
    return query(warehouse, """
        select resource_id, gpu_index, hour_start, samples, coverage, avg_utilization, peak_utilization, energy_kwh
        from intermediate.int_gpu_hours_observed order by all""")


def test_every_reader_lands_the_same_gpu_hours(fleets):
    reference = occupancy(fleets["nvml"]["warehouse"])
    assert len(reference) > 13 * 20  # 13 GPUs over a day, idle and busy hours apart
    for telemetry in ("nvidia-smi", "dcgm"):
        assert occupancy(fleets[telemetry]["warehouse"]) == reference, telemetry


def test_every_reader_sees_the_same_samples_utilisation_and_energy(fleets):
    reference = observed(fleets["nvml"]["warehouse"])
    for telemetry in ("nvidia-smi", "dcgm"):
        rows = observed(fleets[telemetry]["warehouse"])
        assert [r[:7] for r in rows] == [r[:7] for r in reference], telemetry
        # nvidia-smi has no energy counter: power integrated over each 10 s interval comes to the same
        # energy to within a watt-second
        assert all(abs(a[7] - b[7]) < 1e-6 for a, b in zip(rows, reference, strict=True)), telemetry


def test_energy_says_how_it_was_measured(fleets):
    methods = {t: query(f["warehouse"], "select distinct energy_method from intermediate.int_gpu_hours_observed")
               for t, f in fleets.items()}
    assert methods == {"nvml": [("counter",)], "nvidia-smi": [("power",)], "dcgm": [("counter",)]}


@pytest.mark.parametrize("telemetry", TELEMETRY_TOOLS)
def test_unit_economics_match_the_ground_truth_through_each_reader(fleets, telemetry):
    run = fleets[telemetry]
    assert len(run["truth"]["unit_economics"]) >= 10  # the (team, model) pairs that called that day
    assert unit_economics_mismatches(run["warehouse"], run["truth"]) == []
    assert failed_checks(run["result"]) == []
