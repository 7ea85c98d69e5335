"""The NVML collector: what it records of GPUs and processes, files that are never half written,
a clean stop on SIGTERM, recovery after a crash, and a clear failure where there is no GPU."""

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fake_nvml import Device, FakeNvml, SteppedClock, SteppingStop

from ingest import nvml
from ingest.collector import CollectorOptions, HourlyFiles, parse_cgroup, parse_environ, read_process, run

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def read_all(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for p in paths for line in gzip.decompress(p.read_bytes()).splitlines()]


@pytest.mark.parametrize(
    ("cgroup", "container", "pod"),
    [
        # Kubernetes, cgroup v2, systemd driver (the pod uid spelled with underscores)
        ("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f0b9e2a_5c1d_4e57_9a3b_1d2c3b4a5f60.slice/"
         "cri-containerd-" + "ab" * 32 + ".scope\n", "ab" * 32, "0f0b9e2a-5c1d-4e57-9a3b-1d2c3b4a5f60"),
        # Kubernetes, cgroup v1, cgroupfs driver
        ("12:memory:/kubepods/burstable/pod7c1a4b5e-9f8d-4c3b-a2e1-0d9c8b7a6f5e/" + "cd" * 32 + "\n"
         "11:cpu,cpuacct:/kubepods/burstable/pod7c1a4b5e-9f8d-4c3b-a2e1-0d9c8b7a6f5e/" + "cd" * 32 + "\n",
         "cd" * 32, "7c1a4b5e-9f8d-4c3b-a2e1-0d9c8b7a6f5e"),
        ("0::/system.slice/docker-" + "ef" * 32 + ".scope\n", "ef" * 32, None),  # plain Docker
        ("0::/user.slice/user-1000.slice/session-3.scope\n", None, None),  # a process on the host
    ],
)
def test_container_and_pod_come_from_the_cgroup(cgroup, container, pod):
    assert parse_cgroup(cgroup) == (container, pod)


def test_only_allow_listed_environment_is_kept():
    environ = b"PATH=/usr/bin\0GPULEDGER_WORKLOAD=llama-70b\0HF_TOKEN=hf_secret\0VLLM_SERVED_MODEL_NAME=llama\0"
    assert parse_environ(environ, ("GPULEDGER_WORKLOAD", "VLLM_SERVED_MODEL_NAME")) == {
        "GPULEDGER_WORKLOAD": "llama-70b", "VLLM_SERVED_MODEL_NAME": "llama"}


@pytest.fixture
def gpu_process():
    """A real process with a workload name and a secret in its environment, as a vLLM server has."""
    env = {"PATH": os.environ["PATH"], "GPULEDGER_WORKLOAD": "llama-70b", "HF_TOKEN": "hf_never_recorded_41x"}
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], env=env)
    cmdline = Path(f"/proc/{child.pid}/cmdline")
    while b"time.sleep" not in cmdline.read_bytes():  # until the child has exec'd (before, /proc shows ours)
        time.sleep(0.01)
    yield child.pid
    child.kill()
    child.wait()


def test_a_sample_records_gpus_mig_instances_and_processes(tmp_path, gpu_process):
    fake = FakeNvml([
        Device("GPU-aaaa", util=97, power_mw=650_000, memory_used=60 << 30, processes=[(gpu_process, 59 << 30)]),
        Device("GPU-bbbb", name="NVIDIA A100-SXM4-80GB", util=None, mig=[
            Device("MIG-1111", util=None, power_mw=None, energy_mj=None, slices=3,
                   processes=[(gpu_process, 20 << 30)]),
            Device("MIG-2222", util=None, power_mw=None, energy_mj=None, slices=1),
        ]),
    ])
    clock = SteppedClock(datetime(2026, 11, 2, 10, 0, tzinfo=UTC))
    options = CollectorOptions(out=tmp_path, interval=10, host="gpu-node-1", resource_id="i-0abc", duration=20)
    stats = run(options, SteppingStop(clock), fake, clock)
    records = read_all(stats.files)
    assert stats.cycles == 3 and stats.samples == 3 * 4  # 2 GPUs + 2 MIG instances, at :00, :10, :20
    first = records[:4]
    assert [(r["gpu_uuid"], r["gpu_index"], r.get("mig_slices"), r.get("parent_gpu_uuid")) for r in first] == [
        ("GPU-aaaa", 0, None, None), ("GPU-bbbb", 1, None, None), ("MIG-1111", 1, 3, "GPU-bbbb"),
        ("MIG-2222", 1, 1, "GPU-bbbb")]
    assert first[1]["mig_mode"] is True and first[2]["mig_total_slices"] == 7
    assert (first[0]["util_gpu_pct"], first[0]["power_usage_mw"], first[1]["util_gpu_pct"]) == (97, 650_000, None)
    assert [r["ts"] for r in records[::4]] == ["2026-11-02T10:00:00.000Z", "2026-11-02T10:00:10.000Z",
                                              "2026-11-02T10:00:20.000Z"]
    (proc,) = first[0]["processes"]
    assert (proc["pid"], proc["name"], proc["used_gpu_memory_bytes"], proc["env"]) == (
        gpu_process, Path(sys.executable).name[:15], 59 << 30, {"GPULEDGER_WORKLOAD": "llama-70b"})
    assert b"hf_never_recorded_41x" not in b"".join(gzip.decompress(p.read_bytes()) for p in stats.files)
    # what it writes is what the reader reads, without a quarantined line
    parsed = nvml.read_nvml_file(stats.files[0])
    assert parsed.quarantined == [] and parsed.tables[nvml.GPU_SAMPLES].num_rows == 12


def test_files_rotate_hourly_and_are_renamed_only_when_complete(tmp_path):
    clock = SteppedClock(datetime(2026, 11, 2, 10, 59, 40, tzinfo=UTC))
    fake = FakeNvml([Device("GPU-aaaa")])
    stats = run(CollectorOptions(out=tmp_path, interval=10, host="h1", duration=40), SteppingStop(clock), fake, clock)
    assert [p.relative_to(tmp_path).as_posix() for p in stats.files] == [
        "h1/2026-11-02/nvml-h1-20261102T10.jsonl.gz", "h1/2026-11-02/nvml-h1-20261102T11.jsonl.gz"]
    assert [len(read_all([p])) for p in stats.files] == [2, 3]  # 10:59:40, :50 | 11:00:00, :10, :20
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_crash_leaves_no_half_file_and_the_next_start_recovers_it(tmp_path):
    files = HourlyFiles(tmp_path, "h1")
    files.write(datetime(2026, 11, 2, 10, 0, tzinfo=UTC), ['{"line": 1}', '{"line": 2}'])
    tmp = files.tmp
    assert tmp.name.endswith(".jsonl.gz.tmp") and not list(tmp_path.rglob("*.jsonl.gz"))  # nothing to ingest yet
    # the process dies here: the gzip stream is never closed; the next start salvages what was written
    clock = SteppedClock(datetime(2026, 11, 2, 10, 5, tzinfo=UTC))
    stats = run(CollectorOptions(out=tmp_path, interval=10, host="h1", duration=0), SteppingStop(clock),
                FakeNvml([Device("GPU-aaaa")]), clock)
    names = sorted(p.name for p in stats.files)
    assert names == ["nvml-h1-20261102T10-part2.jsonl.gz", "nvml-h1-20261102T10.jsonl.gz"]
    assert read_all([tmp_path / "h1" / "2026-11-02" / "nvml-h1-20261102T10.jsonl.gz"]) == [{"line": 1}, {"line": 2}]
    assert not tmp.exists()


def test_sigterm_stops_cleanly_and_finishes_the_file(tmp_path):
    script = f"""
import sys
sys.path[:0] = [{str(TESTS)!r}, {str(REPO)!r}]
from fake_nvml import Device, FakeNvml
from ingest.collector import CollectorOptions, collect_until_signalled
stats = collect_until_signalled(CollectorOptions(out=__import__("pathlib").Path({str(tmp_path)!r}), interval=0.05,
                                host="h1"), FakeNvml([Device("GPU-aaaa")]))
print(stats.cycles, flush=True)
"""
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not list(tmp_path.rglob("*.tmp")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=20)
    assert child.returncode == 0
    (final,) = tmp_path.rglob("*.jsonl.gz")
    assert len(read_all([final])) == int(out.strip()) > 1
    assert not list(tmp_path.rglob("*.tmp"))


def test_without_a_gpu_the_collector_fails_at_once_saying_why(tmp_path):
    result = subprocess.run([str(Path(sys.executable).parent / "gpuledger"), "collect", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "NVML is not available on this machine" in result.stderr
    assert "needs an NVIDIA driver and GPU" in result.stderr
    assert not list(tmp_path.iterdir())


def test_a_vanished_process_is_recorded_without_details():
    info = read_process(2**22 + 12345, ("GPULEDGER_WORKLOAD",))
    assert (info.name, info.container_id, info.pod_uid, info.env) == (None, None, None, {})
