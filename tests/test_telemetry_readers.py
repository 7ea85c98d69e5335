"""The nvidia-smi, dcgm-exporter and NVML readers on the real samples in ../shared/samples/gpu-telemetry.

Every expected value below was read off the sample text by hand (see that folder's README.md for
where each file came from). Bad input is written into tmp_path, derived from a sample's own lines.
"""

import gzip
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import pytest

from ingest import dcgm, nvidia_smi, nvml
from ingest.files import Parsed

MIB = 2**20
H100_UUID = "GPU-d1beca3a-8801-0ad3-0925-3d0883f336bd"
H100_TOTAL_BYTES = 81559 * MIB  # 85,520,809,984: NVML's memory_total_bytes for the same GPU
DAMAGED_LINE = "truncated line at the end of a damaged file"
GZIP_TRUNCATED = "file truncated: the gzip stream ends early"
NO_TIMESTAMP = "no timestamp field: query nvidia-smi with --query-gpu=timestamp,..."
# The --query-gpu list the README gives for h100-nvidia-smi-query-gpu.csv.
README_QUERY_GPU_FIELDS = [
    "timestamp", "index", "uuid", "serial", "name", "pci.bus_id", "driver_version", "pstate", "utilization.gpu",
    "utilization.memory", "memory.total", "memory.used", "memory.free", "power.draw", "power.limit",
    "enforced.power.limit", "temperature.gpu", "clocks.sm", "clocks.mem", "mig.mode.current", "compute_mode",
]


@pytest.fixture
def telemetry(samples: Path) -> Path:
    return samples / "gpu-telemetry"


def smi(path: Path, **kwargs) -> Parsed:
    return nvidia_smi.read_nvidia_smi_file(path, None, "h100-a", **kwargs)


def gpu_rows(parsed: Parsed) -> list[dict]:
    return parsed.tables[nvidia_smi.GPU_SAMPLES].to_pylist()


def reasons(parsed: Parsed) -> list[tuple[int | None, str]]:
    return [(q.row_number, q.reason) for q in parsed.quarantined]


def stored_gzip_cut(text: bytes, keep: int) -> bytes:
    """A gzip of `text` cut off after its first `keep` bytes of text. Level 0 stores the text as it
    is, so the cut falls exactly where we say and no compressor detail moves it."""
    whole = gzip.compress(text, compresslevel=0)
    start = whole.index(text[:64])
    return whole[: start + keep]


def gzip_without_trailer(text: bytes) -> bytes:
    """A gzip cut off 8 bytes early: every byte of text is there, only the CRC and length are lost."""
    return gzip.compress(text)[:-8]


# --- nvidia-smi --query-gpu, with units ---------------------------------------------------------------

def test_query_gpu_with_units_reads_every_sample_with_exact_values(telemetry):
    parsed = smi(telemetry / "h100-nvidia-smi-query-gpu.csv")
    assert parsed.quarantined == []
    rows = gpu_rows(parsed)
    assert len(rows) == 22
    assert parsed.tables[nvidia_smi.PROCESSES].num_rows == 0
    first, last = rows[0], rows[-1]
    assert first == {
        "ts": datetime(2026, 11, 22, 10, 34, 14, 914000), "host": "h100-a", "gpu_index": 0, "gpu_uuid": H100_UUID,
        "gpu_name": "NVIDIA H100 80GB HBM3", "util_gpu_pct": 0.0, "util_mem_pct": 0.0,
        "mem_total_bytes": H100_TOTAL_BYTES, "mem_used_bytes": 0, "power_draw_w": 116.90, "temp_c": 56.0,
        "sm_clock_mhz": 345.0, "line_number": 2,
    }
    assert (last["ts"], last["power_draw_w"], last["mem_used_bytes"], last["util_gpu_pct"], last["line_number"]) == (
        datetime(2026, 11, 22, 10, 34, 35, 971000), 143.08, 0, 0.0, 23)


def test_query_gpu_reads_the_load_phase_units(telemetry):
    rows = gpu_rows(smi(telemetry / "h100-nvidia-smi-query-gpu.csv"))
    by_line = {r["line_number"]: r for r in rows}
    # line 10: the first busy second, power still lagging behind utilization
    first_busy = by_line[10]
    assert (first_busy["util_gpu_pct"], first_busy["util_mem_pct"], first_busy["power_draw_w"]) == (99.0, 33.0, 244.98)
    # line 11: "99 %, 30 %, 81559 MiB, 1011 MiB, 80069 MiB, 699.27 W, ..., 72, 1395 MHz"
    busy = by_line[11]
    assert (busy["ts"], busy["util_gpu_pct"], busy["util_mem_pct"], busy["mem_used_bytes"], busy["power_draw_w"],
            busy["temp_c"], busy["sm_clock_mhz"]) == (
        datetime(2026, 11, 22, 10, 34, 23, 942000), 99.0, 30.0, 1_060_110_336, 699.27, 72.0, 1395.0)
    assert max(r["power_draw_w"] for r in rows) == 702.05  # line 12, just over the 700 W cap
    assert [r["line_number"] for r in rows if r["util_gpu_pct"] >= 99] == list(range(10, 20))


def test_a_header_repeated_by_a_restarted_loop_is_skipped(telemetry, tmp_path):
    text = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_text()
    path = tmp_path / "twice.csv"
    path.write_text(text + text)
    parsed = smi(path)
    assert parsed.quarantined == []
    rows = gpu_rows(parsed)
    assert len(rows) == 44
    assert (rows[22]["line_number"], rows[22]["ts"], rows[22]["power_draw_w"]) == (
        25, datetime(2026, 11, 22, 10, 34, 14, 914000), 116.90)


def test_not_available_and_not_supported_values_become_null(telemetry, tmp_path):
    line = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_text().splitlines()[1]
    assert ", 0 MiB, 81079 MiB, 116.90 W, " in line and ", 56, 345 MHz," in line
    header = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_text().splitlines()[0]
    changed = (line.replace(", 0 MiB, 81079 MiB, 116.90 W, ", ", [N/A], 81079 MiB, [Not Supported], ")
               .replace(", 56, 345 MHz,", ", [Unknown Error], 345 MHz,")
               .replace(", 0 %, 0 %,", ", [N/A], 0 %,"))
    path = tmp_path / "na.csv"
    path.write_text(f"{header}\n{changed}\n")
    parsed = smi(path)
    assert parsed.quarantined == []
    [row] = gpu_rows(parsed)
    assert (row["util_gpu_pct"], row["util_mem_pct"], row["mem_used_bytes"], row["power_draw_w"], row["temp_c"]) == (
        None, 0.0, None, None, None)
    assert (row["mem_total_bytes"], row["sm_clock_mhz"], row["gpu_uuid"]) == (H100_TOTAL_BYTES, 345.0, H100_UUID)


# --- nvidia-smi --query-compute-apps ------------------------------------------------------------------

def test_compute_apps_reads_the_process_rows_between_repeated_headers(telemetry):
    parsed = smi(telemetry / "h100-nvidia-smi-query-compute-apps.csv")
    assert parsed.quarantined == []
    assert parsed.tables[nvidia_smi.GPU_SAMPLES].num_rows == 0
    procs = parsed.tables[nvidia_smi.PROCESSES].to_pylist()
    assert [(p["line_number"], p["ts"]) for p in procs] == [
        (6, datetime(2026, 11, 22, 10, 34, 23, 18000)),
        (8, datetime(2026, 11, 22, 10, 34, 24, 40000)),
        (10, datetime(2026, 11, 22, 10, 34, 25, 62000)),
        (12, datetime(2026, 11, 22, 10, 34, 26, 83000)),
    ]
    # 1002 MiB is the 1,050,673,152 bytes NVML reports for the same pid
    assert {(p["host"], p["gpu_uuid"], p["pid"], p["process_name"], p["used_gpu_memory_bytes"]) for p in procs} == {
        ("h100-a", H100_UUID, 413, "python3", 1_050_673_152)}


def test_a_process_without_memory_figure_keeps_the_process(telemetry, tmp_path):
    # MIG mode and some drivers print [N/A] for used_gpu_memory
    lines = (telemetry / "h100-nvidia-smi-query-compute-apps.csv").read_text().splitlines()
    path = tmp_path / "apps.csv"
    path.write_text(f"{lines[0]}\n{lines[5].replace('1002 MiB', '[N/A]')}\n")
    parsed = smi(path)
    assert parsed.quarantined == []
    [proc] = parsed.tables[nvidia_smi.PROCESSES].to_pylist()
    assert (proc["pid"], proc["process_name"], proc["used_gpu_memory_bytes"]) == (413, "python3", None)


# --- nvidia-smi --format=csv,noheader,nounits ---------------------------------------------------------

def test_noheader_without_fields_quarantines_every_line(telemetry):
    parsed = smi(telemetry / "h100-nvidia-smi-query-gpu-noheader-nounits.csv")
    assert parsed.rows == 0
    assert reasons(parsed) == [
        (1, "a value line before any header: give the source's `fields` for noheader output")]


def test_noheader_with_its_fields_reads_the_bare_numbers(telemetry):
    # The file holds 5 values a line: timestamp, uuid, two 0s and 146.73 (W, 1 s after the last
    # query-gpu sample's 143.08 W). Read as utilization.gpu and memory.used (0 MiB after the load).
    fields = ["timestamp", "uuid", "utilization.gpu [%]", "memory.used [MiB]", "power.draw [W]"]
    parsed = smi(telemetry / "h100-nvidia-smi-query-gpu-noheader-nounits.csv", fields=fields)
    assert parsed.quarantined == []
    [row] = gpu_rows(parsed)
    assert row == {
        "ts": datetime(2026, 11, 22, 10, 34, 36, 903000), "host": "h100-a", "gpu_index": None, "gpu_uuid": H100_UUID,
        "gpu_name": None, "util_gpu_pct": 0.0, "util_mem_pct": None, "mem_total_bytes": None, "mem_used_bytes": 0,
        "power_draw_w": 146.73, "temp_c": None, "sm_clock_mhz": None, "line_number": 1,
    }


def test_noheader_with_a_field_list_of_the_wrong_length_is_quarantined_not_misread(telemetry):
    parsed = smi(telemetry / "h100-nvidia-smi-query-gpu-noheader-nounits.csv", fields=README_QUERY_GPU_FIELDS)
    assert parsed.rows == 0
    assert reasons(parsed) == [(1, "5 fields where the header has 21")]


def test_nounits_memory_is_mib(telemetry, tmp_path):
    # nounits prints memory without "MiB": the same line as line 11 of the with-units file
    path = tmp_path / "nounits.csv"
    path.write_text(f"2026/11/22 10:34:23.942, 0, {H100_UUID}, 99, 30, 81559, 1011, 699.27\n")
    fields = ["timestamp", "index", "uuid", "utilization.gpu", "utilization.memory", "memory.total", "memory.used",
              "power.draw"]
    [row] = gpu_rows(smi(path, fields=fields))
    assert (row["mem_total_bytes"], row["mem_used_bytes"], row["util_gpu_pct"], row["power_draw_w"]) == (
        H100_TOTAL_BYTES, 1011 * MIB, 99.0, 699.27)


# --- nvidia-smi samples from other tools: no timestamp field ------------------------------------------

def test_bpytop_multi_gpu_sample_has_no_timestamp_so_both_gpus_are_quarantined(telemetry):
    parsed = smi(telemetry / "nvidia-smi-query-gpu__bpytop-26-multigpu.csv")
    assert parsed.rows == 0
    # the header (line 1, starting with `name`) is recognised; each of the two GPU lines is quarantined
    assert reasons(parsed) == [(2, NO_TIMESTAMP), (3, NO_TIMESTAMP)]
    assert {q.source_file for q in parsed.quarantined} == {
        str(telemetry / "nvidia-smi-query-gpu__bpytop-26-multigpu.csv")}


def test_ksysguard_sample_has_no_timestamp_so_all_five_lines_are_quarantined(telemetry):
    parsed = nvidia_smi.read_nvidia_smi_file(
        telemetry / "nvidia-smi-query-gpu__ksysguard-gpu-27.csv", "s3://landing/ksysguard.csv", "desk-1")
    assert parsed.rows == 0
    assert reasons(parsed) == [(n, NO_TIMESTAMP) for n in range(2, 7)]
    assert {q.source_file for q in parsed.quarantined} == {"s3://landing/ksysguard.csv"}


# --- timezones ----------------------------------------------------------------------------------------

def test_local_times_in_berlin_are_stored_as_utc(telemetry):
    # 2026-11-22 is winter time in Berlin (CET, UTC+1)
    rows = gpu_rows(smi(telemetry / "h100-nvidia-smi-query-gpu.csv", timezone="Europe/Berlin"))
    assert (rows[0]["ts"], rows[-1]["ts"]) == (
        datetime(2026, 11, 22, 9, 34, 14, 914000), datetime(2026, 11, 22, 9, 34, 35, 971000))
    procs = smi(telemetry / "h100-nvidia-smi-query-compute-apps.csv", timezone="Europe/Berlin").tables[
        nvidia_smi.PROCESSES]
    assert procs["ts"].to_pylist()[0] == datetime(2026, 11, 22, 9, 34, 23, 18000)


def test_summer_time_in_berlin_is_two_hours_ahead_of_utc(telemetry, tmp_path):
    lines = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_text().splitlines()
    path = tmp_path / "summer.csv"
    path.write_text(f"{lines[0]}\n{lines[1].replace('2026/11/22 10:34:14.914', '2026/07/01 12:00:00.500')}\n")
    [row] = gpu_rows(smi(path, timezone="Europe/Berlin"))
    assert row["ts"] == datetime(2026, 7, 1, 10, 0, 0, 500000)


# --- nvidia-smi bad input -----------------------------------------------------------------------------

def test_nvidia_smi_quarantines_bad_lines_and_keeps_the_rest(telemetry, tmp_path):
    lines = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_text().splitlines()
    path = tmp_path / "bad.csv"
    path.write_text("\n".join([
        lines[0],
        lines[1],
        lines[2].replace("79.23 W", "abc W"),  # line 3: not a number
        lines[3].replace("2026/11/22 10:34:16.926", "22.11.2026 10:34:16"),  # line 4: wrong time format
        lines[4].rsplit(",", 1)[0],  # line 5: one field short
        lines[5],
    ]) + "\n")
    parsed = smi(path)
    assert [(r["line_number"], r["power_draw_w"]) for r in gpu_rows(parsed)] == [(2, 116.90), (6, 79.09)]
    assert reasons(parsed) == [
        (3, "could not convert string to float: 'abc'"),
        (4, "timestamp '22.11.2026 10:34:16' is not nvidia-smi's YYYY/MM/DD HH:MM:SS.mmm"),
        (5, "20 fields where the header has 21"),
    ]


def test_a_gpu_line_with_empty_uuid_and_index_is_quarantined(telemetry, tmp_path):
    lines = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_text().splitlines()
    blank = lines[1].replace(f", 0, {H100_UUID}, ", ", , , ")  # the line's index and uuid fields left empty
    assert blank.startswith("2026/11/22 10:34:14.914, , , 1652824197238, ")
    path = tmp_path / "blank.csv"
    path.write_text(f"{lines[0]}\n{blank}\n{lines[2]}\n")
    parsed = smi(path)
    # nothing identifies the GPU, so no row may land under a made-up id such as "h100-a/gpu"
    assert [(r["line_number"], r["gpu_uuid"]) for r in gpu_rows(parsed)] == [(3, H100_UUID)]
    assert reasons(parsed) == [(2, "neither uuid nor index: query nvidia-smi with --query-gpu=...,index,uuid")]


def test_a_process_line_without_pid_is_quarantined(telemetry, tmp_path):
    lines = (telemetry / "h100-nvidia-smi-query-compute-apps.csv").read_text().splitlines()
    path = tmp_path / "apps.csv"
    path.write_text("\n".join([lines[0], lines[5].replace(", 413,", ", ,"), lines[7]]) + "\n")
    parsed = smi(path)
    assert parsed.tables[nvidia_smi.PROCESSES]["line_number"].to_pylist() == [3]
    assert reasons(parsed) == [(2, "a process line needs gpu_uuid and pid")]


def test_nvidia_smi_truncated_gzip_keeps_the_complete_lines(telemetry, tmp_path):
    text = (telemetry / "h100-nvidia-smi-query-gpu.csv").read_bytes()
    lines = text.splitlines(keepends=True)
    keep = len(b"".join(lines[:11])) + 40  # header, 10 whole samples, then 40 bytes of line 12
    path = tmp_path / "gpu.csv.gz"
    path.write_bytes(stored_gzip_cut(text, keep))
    parsed = smi(path)
    rows = gpu_rows(parsed)
    assert [r["line_number"] for r in rows] == list(range(2, 12))
    assert (rows[-1]["ts"], rows[-1]["power_draw_w"]) == (datetime(2026, 11, 22, 10, 34, 23, 942000), 699.27)
    assert reasons(parsed) == [(12, DAMAGED_LINE), (None, GZIP_TRUNCATED)]


def test_nvidia_smi_gzip_cut_after_the_last_newline_keeps_every_line(telemetry, tmp_path):
    # Only the gzip trailer is missing: all 23 lines arrived whole, the last one with its newline.
    path = tmp_path / "gpu.csv.gz"
    path.write_bytes(gzip_without_trailer((telemetry / "h100-nvidia-smi-query-gpu.csv").read_bytes()))
    parsed = smi(path)
    rows = gpu_rows(parsed)
    assert len(rows) == 22
    assert (rows[-1]["line_number"], rows[-1]["power_draw_w"]) == (23, 143.08)
    assert reasons(parsed) == [(None, GZIP_TRUNCATED)]


# --- dcgm-exporter scrapes ----------------------------------------------------------------------------

def scrape(path: Path, host: str = "k8s-node-1") -> list[dict]:
    parsed = dcgm.read_dcgm_file(path, None, host)
    assert parsed.quarantined == []
    return parsed.tables[dcgm.SAMPLES].to_pylist()


def test_h100_mig_instances_carry_their_pods_and_slices(telemetry):
    rows = scrape(telemetry / "dcgm-exporter__dcgm-exporter-512-h100-mig-pods.prom")
    assert [(r["gpu_instance_id"], r["gpu_instance_profile"], r["mig_slices"], r["mig_total_slices"],
             r["pod"], r["namespace"], r["container"], r["gr_engine_active"], r["line_number"]) for r in rows] == [
        ("7", "1g.10gb", 1, 7, "text-embedding-predictor-00008-deployment-57946f6c67-vdtjl", "model-playground-stg",
         "kserve-container", 0.0, 3),
        ("8", "1g.10gb", 1, 7, None, None, None, 0.0, 4),  # unassigned instance: no pod labels at all
        ("9", "1g.10gb", 1, 7, "tts-predictor-00011-deployment-5554f75554-8j8pl", "model-playground-stg",
         "kserve-container", 0.0, 5),
    ]
    assert {(r["host"], r["exporter_hostname"], r["gpu_index"], r["gpu_uuid"], r["model_name"]) for r in rows} == {
        ("k8s-node-1", "gsrh100-074", 0, "GPU-58e8f5ea-13cc-013a-d88f-2bcf5ae8bc77", "NVIDIA H100 80GB HBM3")}
    assert {r["util_gpu_pct"] for r in rows} == {None}


def test_a100_mig_with_lower_case_metric_and_alternative_label_names(telemetry):
    rows = scrape(telemetry / "dcgm-exporter__dcgm-exporter-272-a100-mig-altlabels.prom")
    assert [(r["gpu_index"], r["gpu_uuid"], r["gpu_instance_id"], r["gpu_instance_profile"], r["mig_slices"],
             r["mig_total_slices"], r["gr_engine_active"]) for r in rows] == [
        (0, "GPU-ed1353d6-52ba-8793-7230-4d5d3eb68167", "1", "3g.40gb", 3, 7, 0.0),
        (0, "GPU-ed1353d6-52ba-8793-7230-4d5d3eb68167", "2", "4g.40gb", 4, 7, 0.0),
        (1, "GPU-6043e4b2-feaa-8010-34c7-61d1a01576bb", "1", "3g.40gb", 3, 7, 0.0),
    ]
    # pod_name/pod_namespace/container_name are present but empty: nobody holds these instances
    assert {(r["pod"], r["namespace"], r["container"], r["exporter_hostname"]) for r in rows} == {
        (None, None, None, None)}


def test_alternative_pod_label_spellings_are_read_when_filled(telemetry, tmp_path):
    text = (telemetry / "dcgm-exporter__dcgm-exporter-272-a100-mig-altlabels.prom").read_text()
    first = text.splitlines()[0].replace('container_name=""', 'container_name="vllm"').replace(
        'pod_name=""', 'pod_name="llama-0"').replace('pod_namespace=""', 'pod_namespace="serving"')
    relabelled = (first.replace("container_name", "exported_container").replace("pod_namespace", "exported_namespace")
                  .replace("pod_name", "exported_pod").replace('GPU_I_ID="1"', 'GPU_I_ID="2"'))
    path = tmp_path / "alt.prom"
    path.write_text(f"{first}\n{relabelled}\n")
    rows = scrape(path)
    assert [(r["gpu_instance_id"], r["pod"], r["namespace"], r["container"]) for r in rows] == [
        ("1", "llama-0", "serving", "vllm"), ("2", "llama-0", "serving", "vllm")]


def test_v100_host_mode_keeps_the_gpu_util_and_ignores_metrics_the_cost_model_does_not_use(telemetry):
    # POWER_MGMT_LIMIT and PCIE_REPLAY_COUNTER lines are skipped (not quarantined); GPU_UTIL is on line 11
    [row] = scrape(telemetry / "dcgm-exporter__dcgm-exporter-250-v100.prom", host="r6i3n0")
    assert (row["host"], row["exporter_hostname"], row["gpu_index"], row["gpu_uuid"], row["model_name"]) == (
        "r6i3n0", "r6i3n0", 0, "GPU-a6158b59-2c1e-1e63-0068-9178c4298abd", "Tesla V100-SXM2-32GB")
    assert (row["util_gpu_pct"], row["power_usage_w"], row["pod"], row["gpu_instance_id"], row["mig_slices"],
            row["line_number"]) == (0.0, None, None, None, None, 11)


def test_titanv_sample_holds_only_sm_clock_so_no_rows_and_nothing_quarantined(telemetry):
    assert scrape(telemetry / "dcgm-exporter__dcgm-exporter-58-titanv.prom") == []


def test_fake_gpu_operator_reports_free_framebuffer_per_gpu(telemetry):
    rows = scrape(telemetry / "dcgm-exporter__fake-gpu-operator-93.prom")
    assert [(r["gpu_index"], r["gpu_uuid"], r["fb_free_mib"], r["fb_used_mib"]) for r in rows] == [
        (1, "GPU-00b0279e-9a2e-56e3-90e2-52d8551d6031", 11441.0, None),
        (3, "GPU-bdf06b03-d5d7-5b41-932e-5fdd2ef59ddc", 11441.0, None),
        (0, "GPU-cc0557e3-8fbd-51f0-b7d3-7a548c581d7f", 11441.0, None),
        (2, "GPU-ef912753-2d5d-55ba-8ab5-dd7a82f54876", 11441.0, None),
    ]
    assert {(r["model_name"], r["exporter_hostname"], r["pod"]) for r in rows} == {
        ("nvidia-A100", "nvidia-dcgm-exporter-5e5b02", None)}


def test_gpu_monitoring_tools_sample_merges_power_energy_and_util_into_one_row(telemetry):
    [row] = scrape(telemetry / "dcgm-exporter__gpu-monitoring-tools-138.prom")
    assert (row["gpu_index"], row["gpu_uuid"], row["power_usage_w"], row["total_energy_mj"], row["util_gpu_pct"]) == (
        0, "GPU-6bf47ca9-ad3e-15db-beed-1079a7d74116", 302.206, 4_335_301_032.0, 44.0)
    # the row is numbered by the device's first used metric, POWER_USAGE on line 5; empty pod labels are null
    assert (row["line_number"], row["pod"], row["namespace"], row["container"], row["model_name"]) == (
        5, None, None, None, None)


# --- dcgm-exporter timestamps -------------------------------------------------------------------------

def test_a_bare_scrape_takes_its_time_from_the_file_name(telemetry, tmp_path):
    path = tmp_path / "dcgm-k8s-node-1-20261102T101500.prom"
    shutil.copyfile(telemetry / "dcgm-exporter__dcgm-exporter-512-h100-mig-pods.prom", path)
    assert {r["ts"] for r in scrape(path)} == {datetime(2026, 11, 2, 10, 15, 0)}


def test_a_bare_scrape_without_a_time_in_its_name_takes_the_file_time(telemetry, tmp_path):
    path = tmp_path / "metrics.prom"
    shutil.copyfile(telemetry / "dcgm-exporter__gpu-monitoring-tools-138.prom", path)
    os.utime(path, (1_793_617_200, 1_793_617_200))  # 2026-11-02 11:00:00 UTC
    assert [r["ts"] for r in scrape(path)] == [datetime(2026, 11, 2, 11, 0, 0)]


def test_prometheus_timestamps_split_a_file_into_one_row_per_scrape(telemetry, tmp_path):
    lines = (telemetry / "dcgm-exporter__gpu-monitoring-tools-138.prom").read_text().splitlines()
    power, energy, util = lines[4], lines[5], lines[7]
    path = tmp_path / "dcgm-20261102T000000.prom"  # line timestamps win over the file name
    path.write_text("\n".join([
        f"{power} 1793614500000", f"{energy} 1793614500000", f"{util} 1793614500000",
        f"{power.replace('302.206000', '310.5')} 1793614515000",
        f"{energy.replace('4335301032', '4339958532')} 1793614515000",
    ]) + "\n")
    rows = scrape(path)
    assert [(r["ts"], r["power_usage_w"], r["total_energy_mj"], r["util_gpu_pct"], r["line_number"]) for r in rows] == [
        (datetime(2026, 11, 2, 10, 15, 0), 302.206, 4_335_301_032.0, 44.0, 1),
        (datetime(2026, 11, 2, 10, 15, 15), 310.5, 4_339_958_532.0, None, 4),
    ]


def test_a30_mig_profiles_count_slices_of_four(telemetry, tmp_path):
    line = (telemetry / "dcgm-exporter__dcgm-exporter-512-h100-mig-pods.prom").read_text().splitlines()[2]
    path = tmp_path / "a30.prom"
    path.write_text(line.replace("NVIDIA H100 80GB HBM3", "NVIDIA A30").replace("1g.10gb", "2g.12gb") + "\n")
    [row] = scrape(path)
    assert (row["gpu_instance_profile"], row["mig_slices"], row["mig_total_slices"]) == ("2g.12gb", 2, 4)


# --- dcgm-exporter bad input --------------------------------------------------------------------------

def test_dcgm_quarantines_bad_lines_and_keeps_the_rest(telemetry, tmp_path):
    lines = (telemetry / "dcgm-exporter__gpu-monitoring-tools-138.prom").read_text().splitlines()
    path = tmp_path / "bad.prom"
    path.write_text("\n".join([
        "<html><body>502 Bad Gateway</body></html>",  # line 1: the scraper saved a proxy's error page
        lines[4],  # line 2: power
        lines[5][:60],  # line 3: a line cut off inside its labels
        lines[7].replace('UUID="GPU-6bf47ca9-ad3e-15db-beed-1079a7d74116",', ""),  # line 4: no UUID label
        lines[7].replace("} 44", "} n/a"),  # line 5: not a number
        lines[5],  # line 6: energy
    ]) + "\n")
    parsed = dcgm.read_dcgm_file(path, None, "k8s-node-1")
    [row] = parsed.tables[dcgm.SAMPLES].to_pylist()
    assert (row["power_usage_w"], row["total_energy_mj"], row["util_gpu_pct"], row["line_number"]) == (
        302.206, 4_335_301_032.0, None, 2)
    assert reasons(parsed) == [
        (1, "not a Prometheus text line"),
        (3, "not a Prometheus text line"),
        (4, "no UUID label"),
        (5, "value 'n/a' is not a number"),
    ]


def test_dcgm_truncated_gzip_keeps_the_complete_lines(telemetry, tmp_path):
    text = (telemetry / "dcgm-exporter__gpu-monitoring-tools-138.prom").read_bytes()
    lines = text.splitlines(keepends=True)
    keep = len(b"".join(lines[:5])) + 30  # lines 1-5 whole (power on line 5), 30 bytes of line 6 (energy)
    path = tmp_path / "scrape-20261102T101500.prom.gz"
    path.write_bytes(stored_gzip_cut(text, keep))
    parsed = dcgm.read_dcgm_file(path, None, "k8s-node-1")
    [row] = parsed.tables[dcgm.SAMPLES].to_pylist()
    assert (row["ts"], row["power_usage_w"], row["total_energy_mj"], row["util_gpu_pct"]) == (
        datetime(2026, 11, 2, 10, 15, 0), 302.206, None, None)
    assert reasons(parsed) == [(6, DAMAGED_LINE), (None, GZIP_TRUNCATED)]


def test_dcgm_gzip_cut_after_the_last_newline_keeps_every_line(telemetry, tmp_path):
    # Only the gzip trailer is missing: line 8 (GPU_UTIL 44) arrived whole, with its newline.
    path = tmp_path / "scrape-20261102T101500.prom.gz"
    path.write_bytes(gzip_without_trailer((telemetry / "dcgm-exporter__gpu-monitoring-tools-138.prom").read_bytes()))
    parsed = dcgm.read_dcgm_file(path, None, "k8s-node-1")
    [row] = parsed.tables[dcgm.SAMPLES].to_pylist()
    assert (row["power_usage_w"], row["total_energy_mj"], row["util_gpu_pct"]) == (302.206, 4_335_301_032.0, 44.0)
    assert reasons(parsed) == [(None, GZIP_TRUNCATED)]


# --- NVML ---------------------------------------------------------------------------------------------

def test_raw_pynvml_capture_is_not_collector_output_and_is_quarantined_line_by_line(telemetry):
    # The capture has no `host` or `gpu_index` (gpuledger's collector writes both) and a static
    # device-info line first; nothing is read as data, every line says why.
    parsed = nvml.read_nvml_file(telemetry / "h100-nvml-samples.jsonl", label="capture")
    assert parsed.rows == 0
    assert reasons(parsed) == [(1, "expected an ISO-8601 timestamp, got None")] + [
        (n, "missing field 'host'") for n in range(2, 24)]
    assert {q.source_file for q in parsed.quarantined} == {"capture"}


def test_nvml_capture_with_the_collector_fields_added_reads_exact_values(telemetry, tmp_path):
    lines = (telemetry / "h100-nvml-samples.jsonl").read_text().splitlines()[1:]  # drop the static line
    path = tmp_path / "nvml-h100-a-20261122T10.jsonl.gz"
    path.write_bytes(gzip.compress("".join(
        json.dumps(json.loads(ln) | {"host": "h100-a", "gpu_index": 0}) + "\n" for ln in lines).encode()))
    parsed = nvml.read_nvml_file(path)
    assert parsed.quarantined == []
    gpus = parsed.tables[nvml.GPU_SAMPLES].to_pylist()
    procs = parsed.tables[nvml.PROCESSES].to_pylist()
    assert len(gpus) == 22
    first, last = gpus[0], gpus[-1]
    assert (first["ts"], first["power_usage_mw"], first["total_energy_mj"], first["mem_used_bytes"],
            first["mem_total_bytes"], first["util_gpu_pct"], first["temp_c"], first["sm_clock_mhz"],
            first["process_count"]) == (
        datetime(2026, 11, 22, 10, 34, 15, 133000), 109_468, 2_486_505, 480 * MIB, H100_TOTAL_BYTES, 0.0, 56, 345, 0)
    assert (last["ts"], last["power_usage_mw"], last["total_energy_mj"], last["mem_used_bytes"],
            last["process_count"]) == (
        datetime(2026, 11, 22, 10, 34, 34, 571000), 143_123, 10_280_234, 1_563_230_208, 1)
    busy = gpus[10]  # sample line 12: 100 % busy at 700.272 W
    assert (busy["ts"], busy["util_gpu_pct"], busy["util_mem_pct"], busy["power_usage_mw"], busy["sm_clock_mhz"]) == (
        datetime(2026, 11, 22, 10, 34, 25, 25000), 100.0, 31.0, 700_272, 1395)
    # pid 413 appears on the 14 samples from 10:34:23.014 on, holding 1002 MiB each time
    assert len(procs) == 14
    assert procs[0]["ts"] == datetime(2026, 11, 22, 10, 34, 23, 14000)
    assert {(p["gpu_uuid"], p["pid"], p["used_gpu_memory_bytes"], p["process_name"], p["env"]) for p in procs} == {
        (H100_UUID, 413, 1002 * MIB, None, "{}")}
