"""GPU telemetry as it really arrives, through the real pipeline, worked out by hand.

A g5.12xlarge `i-0gpu` (host g5-a, 4 GPUs) is billed $8.00 for 10:00 and for 11:00 ($2.00 a
GPU-hour); a g5.xlarge `i-0skew` (1 GPU) $1.00 for 10:00. The collector samples every 30 s at
100 W from 09:59:30, so each sample in the hour has an energy delta of 3,000 J.

  g5-a 10:00 file   lines shuffled; resent byte for byte under another name, and shipped
                    once more with its lines in another order (other bytes, same samples)
    GPU 0  `chat` all hour                                        $2.00 chat, 0.1 kWh
    GPU 1  `chat`, collector gap 10:20-10:40 (80 samples)         $2.00 chat, coverage 2/3,
                                                                  79 deltas = 0.065833 kWh
    GPU 2  `tune`, energy counter reset at 10:30                  $2.00 tune, 0.1 kWh (mixed)
    GPU 3  no telemetry                                           $2.00 unmonitored
  g5-a 11:00 file   GPU 0 `chat`, the gzip cut off half-way        $2.00 chat; the cut quarantined
                    GPUs 1-3 nothing yet                          $6.00 unmonitored
  g5-a 11:00 late   GPU 1 `chat`, lands after the first run       then $2.00 chat, $4.00 unmonitored
  a half-written collector file (`.tmp`)                          never read
  g5-skew           clock 5 minutes fast: 10:05:00-11:04:30       $1.00 chat, none lost
  h100-lab          the real H100 capture, on-prem, in no bill    listed as unbilled with its energy
"""

import gzip
import json
import random
import shutil
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from pipeline import failed_checks, query, run_messages
from test_allocation import CHAT, STEP, T10, T11, TUNE, cur_line, write_cur
from test_allocation import ENERGY_STEP_MJ as STEP_MJ

from ingest.config import load_config
from ingest.day_windows import MAX_GPU_SLICES, Chunk, NewRows, day_chunks, days_to_rebuild
from orchestration.runs import run_days, run_everything

HOUR = timedelta(hours=1)

CONFIG = """
sources:
  aws_cur: [{location: billing, export_name: cur}]
  nvml: [{location: telemetry}]
teams: {search: {}, research: {}}
workloads:
  - {name: chat, kind: inference, owner_team: search, models: [chat-model], match: {env: {GPULEDGER_WORKLOAD: chat}}}
  - {name: tune, kind: training, owner_team: research, match: {process_name: pt_main_thread}}
"""


def sample(t: datetime, host: str, resource: str, gpu: int, energy_mj: int, procs: list[dict]) -> dict:
    return {"ts": t.isoformat() + "Z", "host": host, "resource_id": resource, "gpu_index": gpu,
            "gpu_uuid": f"GPU-{host}-{gpu}", "util_gpu_pct": 90, "power_usage_mw": 100_000,
            "total_energy_mj": energy_mj, "processes": procs}


def gzip_lines(path: Path, lines: list[dict]) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = gzip.compress("".join(json.dumps(ln) + "\n" for ln in lines).encode())
    path.write_bytes(data)
    return data


def hour_10(host: str = "g5-a") -> list[dict]:
    lines = []
    for i in range(121):  # 09:59:30 .. 10:59:30
        t = T10 - STEP + i * STEP
        lines.append(sample(t, host, "i-0gpu", 0, 10**9 + i * STEP_MJ, [CHAT]))
        if not T10 + timedelta(minutes=20) <= t < T10 + timedelta(minutes=40):
            lines.append(sample(t, host, "i-0gpu", 1, 2 * 10**9 + i * STEP_MJ, [CHAT]))
        reset_at = 62  # 10:30:00: the driver reloaded and the counter started again from zero
        energy = 3 * 10**9 + i * STEP_MJ if i < reset_at else 1_000 + (i - reset_at) * STEP_MJ
        lines.append(sample(t, host, "i-0gpu", 2, energy, [TUNE]))
    random.Random(4).shuffle(lines)  # several collector threads, or a log shipper, reorder lines
    return lines


def hour_11(gpu: int, first_energy: int) -> list[dict]:
    return [sample(T11 + i * STEP, "g5-a", "i-0gpu", gpu, first_energy + (i + 1) * STEP_MJ, [CHAT]) for i in range(120)]


def skewed_host() -> list[dict]:
    fast = timedelta(minutes=5)
    return [sample(T10 - STEP + i * STEP + fast, "g5-skew", "i-0skew", 0, 10**9 + i * STEP_MJ, [CHAT])
            for i in range(121)]


def real_h100_capture(samples: Path) -> list[dict]:
    """The real H100 capture as the collector would have written it: pynvml's readings plus the
    host and GPU index the collector adds (line 1 of the capture is static device info)."""
    lines = (samples / "gpu-telemetry" / "h100-nvml-samples.jsonl").read_text().splitlines()[1:]
    return [json.loads(line) | {"host": "h100-lab", "gpu_index": 0} for line in lines]


@pytest.fixture(scope="module")
def landing(tmp_path_factory, samples) -> Path:
    root = tmp_path_factory.mktemp("telemetry-bad")
    (root / "gpuledger.yaml").write_text(CONFIG)
    write_cur(root / "billing", [
        cur_line(T10, T10 + HOUR, "Usage", 8.0, "USE1-BoxUsage:g5.12xlarge", "i-0gpu", None, "g5.12xlarge"),
        cur_line(T11, T11 + HOUR, "Usage", 8.0, "USE1-BoxUsage:g5.12xlarge", "i-0gpu", None, "g5.12xlarge"),
        cur_line(T10, T10 + HOUR, "Usage", 1.0, "USE1-BoxUsage:g5.xlarge", "i-0skew", None, "g5.xlarge"),
    ])
    tel = root / "telemetry"
    gzip_lines(tel / "g5-a" / "nvml-g5-a-20261102T10.jsonl.gz", hour_10())
    shutil.copy(tel / "g5-a" / "nvml-g5-a-20261102T10.jsonl.gz", tel / "g5-a" / "resent-nvml-g5-a-20261102T10.jsonl.gz")
    gzip_lines(tel / "g5-a" / "reshipped-nvml-g5-a-20261102T10.jsonl.gz", sorted(hour_10(), key=lambda s: s["ts"]))
    whole = gzip_lines(tel / "g5-a" / "nvml-g5-a-20261102T11.jsonl.gz", hour_11(0, 10**9 + 120 * STEP_MJ))
    (tel / "g5-a" / "nvml-g5-a-20261102T11.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    (tel / "g5-a" / "nvml-g5-a-20261102T12.jsonl.gz.tmp").write_bytes(whole[:100])  # the collector is writing it
    gzip_lines(tel / "g5-skew" / "nvml-g5-skew-20261102T10.jsonl.gz", skewed_host())
    gzip_lines(tel / "h100-lab" / "nvml-h100-lab-20261122T10.jsonl.gz", real_h100_capture(samples))
    return root


@pytest.fixture(scope="module")
def instance() -> dg.DagsterInstance:
    """One Dagster instance for the module's runs, so a later run knows what the first one built."""
    return dg.DagsterInstance.ephemeral()


@pytest.fixture(scope="module")
def first_run(landing, instance) -> Path:
    result = run_everything(landing / "gpuledger.yaml", instance, log_level="WARNING", say=lambda _: None)
    assert result.success
    # warnings, not failures: the truncated file's quarantine, and h100-lab in no bill
    assert sorted(failed_checks(result)) == [
        "intermediate/int_unbilled_gpus:every_gpu_in_telemetry_is_billed",
        "raw/nvml_gpu_samples:no_quarantined_rows", "raw/nvml_processes:no_quarantined_rows"]
    return load_config(landing / "gpuledger.yaml").warehouse_path


def allocation(warehouse: Path, resource: str) -> list[tuple]:
    return query(warehouse, """
        select hour(hour_start), gpu_index, coalesce(workload, holder_kind), sum(effective_cost)
        from intermediate.int_gpu_hour_allocation where resource_id = ? group by all order by all""", [resource])


def test_duplicated_shuffled_gappy_and_reset_telemetry_splits_the_hour_exactly(first_run):
    assert allocation(first_run, "i-0gpu") == [
        (10, 0, "chat", Decimal("2")), (10, 1, "chat", Decimal("2")), (10, 2, "tune", Decimal("2")),
        (10, 3, "unmonitored", Decimal("2")),
        (11, 0, "chat", Decimal("2")), (11, 1, "unmonitored", Decimal("2")), (11, 2, "unmonitored", Decimal("2")),
        (11, 3, "unmonitored", Decimal("2")),
    ]


def test_resent_samples_count_once(first_run):
    assert query(first_run, "select reason from raw.quarantine where source_file like '%/resent-%'") == [
        (f"duplicate of {first_run.parents[1]}/telemetry/g5-a/nvml-g5-a-20261102T10.jsonl.gz (same bytes): "
         "not loaded again",)]
    before_11 = "host = 'g5-a' and ts < '2026-11-02 11:00'"
    (raw,), = query(first_run, f"select count(*) from raw.nvml_gpu_samples where {before_11}")
    (kept,), = query(first_run, f"select count(*) from intermediate.int_gpu_samples where {before_11}")
    assert (raw, kept) == (2 * (121 + 81 + 121), 121 + 81 + 121)  # the reshipped file's rows land, then count once


def test_gaps_lower_coverage_and_energy_resets_fall_back_to_power(first_run):
    rows = query(first_run, """
        select gpu_index, samples, round(coverage, 6), round(energy_kwh, 6), energy_method
        from intermediate.int_gpu_hours_observed where resource_id = 'i-0gpu' and hour(hour_start) = 10 order by 1""")
    assert [(g, n, float(c), float(e), m) for g, n, c, e, m in rows] == [
        (0, 120, 1.0, 0.1, "counter"),
        (1, 80, 0.666667, 0.065833, "counter"),  # nothing is claimed across the 20-minute gap
        (2, 120, 1.0, 0.1, "mixed"),  # the interval over the reset integrates 100 W for 30 s
    ]


def test_a_truncated_file_keeps_its_complete_lines_and_says_why(first_run):
    quarantined = query(first_run, """
        select source_file, row_number, reason from raw.quarantine where source_file like '%T11.jsonl.gz'
        order by row_number nulls last""")
    landed = query(first_run, """
        select count(*) from raw.nvml_gpu_samples where _source_file like '%T11.jsonl.gz'""")[0][0]
    assert 0 < landed < 120
    assert [(row, reason) for _, row, reason in quarantined] == [
        (landed + 1, "truncated line at the end of a damaged file"),
        (None, "file truncated: the gzip stream ends early"),
    ]


def test_a_file_still_being_written_is_not_read(first_run):
    assert query(first_run, "select count(*) from raw.ingested_files where scope like '%.tmp'") == [(0,)]
    assert query(first_run, "select count(*) from raw.quarantine where source_file like '%.tmp'") == [(0,)]
    assert query(first_run, """
        select count(*) from raw.nvml_gpu_samples where host = 'g5-a' and ts >= '2026-11-02 12:00'""") == [(0,)]


def test_a_fast_host_clock_loses_no_billed_dollar(first_run):
    # its samples read 10:04:30-11:04:30: the billed hour is split over the 111 samples in it, all
    # chat, and the ten stamped 11:00-11:04:30 fall in an hour that is not billed and cost nothing
    assert allocation(first_run, "i-0skew") == [(10, 0, "chat", Decimal("1"))]
    assert query(first_run, """
        select hour(hour_start), samples from intermediate.int_gpu_hours_observed where host = 'g5-skew'
        order by 1""") == [(10, 111), (11, 10)]


def test_a_gpu_in_no_bill_is_listed_with_its_real_energy(first_run):
    # the real H100 capture: 22 samples 0.5 s apart whose energy counter rose 7,793.729 J
    # (integrating its power readings instead gives 7,863.1 J, 0.9 % more)
    rows = query(first_run, "select host, gpu_uuid, observed_hours, energy_kwh from intermediate.int_unbilled_gpus")
    assert [(h, u, n, round(float(e), 9)) for h, u, n, e in rows] == [
        ("h100-lab", "GPU-d1beca3a-8801-0ad3-0925-3d0883f336bd", 1, round(7_793_729 / 3.6e9, 9))]


def test_a_late_file_fills_its_hour_and_changes_nothing_else(landing, first_run, instance):
    before = allocation(first_run, "i-0gpu")
    gzip_lines(landing / "telemetry" / "g5-a" / "nvml-g5-a-20261102T11-part2.jsonl.gz",
               hour_11(1, 2 * 10**9 + 120 * STEP_MJ))
    # what the file sensor starts for a late file: its day's partition, then the ledger and marts
    late = run_days(landing / "gpuledger.yaml", instance, "2026-11-02", "2026-11-02", say=lambda _: None)
    assert late.success
    logs = run_messages(instance, late.results)
    assert "daily models: rebuilding 2026-11-02 up to 2026-11-03" in logs  # that day only, not h100-lab's 11-22
    after = allocation(first_run, "i-0gpu")
    assert [r for r in after if r[0] == 10] == [r for r in before if r[0] == 10]
    assert [r for r in after if r[0] == 11] == [
        (11, 0, "chat", Decimal("2")), (11, 1, "chat", Decimal("2")), (11, 2, "unmonitored", Decimal("2")),
        (11, 3, "unmonitored", Decimal("2")),
    ]


def test_rows_of_other_days_and_retried_requests_widen_the_days_rebuilt():
    """A file named for (or written on) one day can hold another day's samples: an nvidia-smi log
    appended across midnight, a collector's backlog. Their days are rebuilt with the partition, as
    are the days of earlier attempts of a request retried across midnight."""
    day = (datetime(2026, 11, 24), datetime(2026, 11, 25))
    assert days_to_rebuild(*day, NewRows()) == day
    assert days_to_rebuild(*day, NewRows(datetime(2026, 11, 24, 1), datetime(2026, 11, 24, 2))) == day
    assert days_to_rebuild(*day, NewRows(datetime(2026, 11, 22, 23, 59), datetime(2026, 11, 24, 3))) == \
        (datetime(2026, 11, 22), datetime(2026, 11, 25))
    assert days_to_rebuild(*day, NewRows(datetime(2026, 11, 24, 5), datetime(2026, 11, 26, 0, 0, 30))) == \
        (datetime(2026, 11, 24), datetime(2026, 11, 27))
    retried = NewRows(datetime(2026, 11, 24, 0, 0, 15), datetime(2026, 11, 24, 9),
                      retried_first=datetime(2026, 11, 23, 23, 59, 40), retried_last=datetime(2026, 11, 23, 23, 59, 40))
    assert days_to_rebuild(*day, retried) == (datetime(2026, 11, 23), datetime(2026, 11, 25))


def test_many_days_are_built_in_runs_of_whole_days_that_cover_the_gaps_between_them():
    con = duckdb.connect()
    con.execute("create schema raw")
    con.execute("create table raw.nvml_gpu_samples as select unnest(?::timestamp[]) as ts",
                [["2026-11-01 03:00", "2026-11-01 23:59", "2026-11-02 01:00", "2026-11-04 01:00"]])
    con.execute("create table raw.gateway_requests as select timestamp '2026-11-02 12:00' as ts")
    day = [datetime(2026, 11, d) for d in range(1, 8)]
    # every day with rows: two days' 4 rows, then the rest
    assert day_chunks(con, None, None, 4) == [Chunk(day[0], day[2]), Chunk(day[2], day[4])]
    assert day_chunks(con, None, None, 100) == [Chunk(day[0], day[4])]
    # a day over the limit stands alone, built in GPU slices of at most the limit; the days asked for
    # without rows stay in the runs beside them
    assert day_chunks(con, datetime(2026, 10, 30), day[6], 1) == [
        Chunk(datetime(2026, 10, 30), day[1], gpu_slices=2), Chunk(day[1], day[2], gpu_slices=2),
        Chunk(day[2], day[6])]
    assert day_chunks(con, day[5], day[6], 1) == [Chunk(day[5], day[6])]  # no rows: the day still empties
    # however small the limit, a day is built in at most MAX_GPU_SLICES slices
    con.execute("insert into raw.nvml_gpu_samples select timestamp '2026-11-06 00:00' from range(?)",
                [MAX_GPU_SLICES + 10])
    assert day_chunks(con, day[5], day[6], 1) == [Chunk(day[5], day[6], gpu_slices=MAX_GPU_SLICES)]


def test_a_changed_workload_rule_re_attributes_every_day_on_the_next_run(landing, first_run, instance):
    config = landing / "gpuledger.yaml"
    config.write_text(CONFIG.replace("match: {process_name: pt_main_thread}", "match: {process_name: torchrun}"))
    try:
        run = run_days(config, instance, "2026-11-22", "2026-11-22", say=lambda _: None)  # another day's files
        assert run.success
        logs = run_messages(instance, run.results)
        assert "gpuledger.yaml or the daily models changed: rebuilding every day" in logs
        # GPU 2's pt_main_thread on 2026-11-02 no longer matches `tune`: its $2.00 goes to unmatched
        assert (10, 2, "unmatched", Decimal("2")) in allocation(first_run, "i-0gpu")
    finally:
        config.write_text(CONFIG)
