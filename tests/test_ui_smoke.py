"""`dagster dev -w workspace.yaml` as a user starts it: the UI shows every asset, check, schedule
and sensor of the definitions, runs a materialization, draws the asset graph in a browser without
errors, and stops with all its processes on a SIGTERM to its process group."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from browser import chromium

from ingest.config import load_config
from ingest.config_tables import CONFIG_TABLES
from orchestration.assets.config_tables import CONFIG_KEYS
from orchestration.cli import DAGSTER_YAML
from orchestration.definitions import defs

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "gpuledger"
REPOSITORY = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
SCREENSHOT = REPO / "docs" / "img" / "asset_graph.png"
UPDATE_SCREENSHOT = "GPULEDGER_UPDATE_SCREENSHOTS"  # set to 1 to rewrite SCREENSHOT (the README shows it)

# The daemon `dagster dev` starts runs the sensors that are on by default, and they find the
# fleet's files and request runs. Here those runs (and any schedule's, should a tick fall inside the
# test) stay queued: a whole pipeline would take the one duckdb_writer slot from the test's run and
# could still be writing when the server stops. The sensors themselves tick as they would anywhere.
def instance_yaml() -> str:
    """gpuledger's dagster.yaml, with runs started by a sensor or schedule held in the queue."""
    config = yaml.safe_load(DAGSTER_YAML)
    config["concurrency"]["runs"] = {"tag_concurrency_limits": [
        {"key": "dagster/sensor_name", "limit": 0}, {"key": "dagster/schedule_name", "limit": 0}]}
    return yaml.safe_dump(config)


def as_from_a_terminal() -> None:
    """In the child before exec: SIGINT and SIGTERM at their defaults. `dagster dev` answers SIGTERM
    with its SIGINT handler, so where pytest itself was started with SIGINT ignored (`pytest &` in a
    script) it would ignore SIGTERM too."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes() -> dict[int, tuple[int, int]]:
    """Every live process's (parent, session) from /proc (psutil is not a dependency)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, ppid, _, sid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:4]
            except (OSError, ValueError):
                continue
            if state != "Z":
                found[int(entry.name)] = (int(ppid), int(sid))
    return found


def command_lines(pids: set[int]) -> dict[int, str]:
    """What each pid runs (read while it lives), for a failure message."""
    found = {}
    for pid in sorted(pids):
        try:
            found[pid] = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
        except OSError:
            found[pid] = "(exited)"
    return found


def pids_of_tree(root: int) -> set[int]:
    """root and every descendant."""
    parents = {pid: ppid for pid, (ppid, _) in processes().items()}
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


class Server:
    def __init__(self, port: int, log: Path, proc: subprocess.Popen, config_path: Path):
        self.url, self.log, self.proc, self.config_path = f"http://127.0.0.1:{port}", log, proc, config_path

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def graphql(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.load(response)
        assert not answer.get("errors"), (answer["errors"], query)
        return answer["data"]


WORKSPACE = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
    locationOrLoadError { __typename ... on PythonError { message stack } } } } } }"""


def wait_for_location(server: Server, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.proc.poll() is None, f"dagster dev exited ({server.proc.returncode}):\n{server.log_tail()}"
        try:
            entries = server.graphql(WORKSPACE)["workspaceOrError"].get("locationEntries", [])
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            entries = []  # not listening yet
        for entry in entries:
            if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                loaded = entry["locationOrLoadError"]
                assert loaded["__typename"] == "RepositoryLocation", f"{loaded}\n{server.log_tail()}"
                return
        time.sleep(0.5)
    pytest.fail(f"the {LOCATION} code location did not load in {timeout:.0f} s:\n{server.log_tail()}")


def stop(server: Server, timeout: float = 30) -> set[int]:
    """SIGTERM to the process group, SIGKILL after `timeout`; the pids that outlived it: the
    descendants it had, and anything left in its session (start_new_session: session id = its pid)."""
    tree = pids_of_tree(server.proc.pid)
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
        server.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        pytest.fail(f"dagster dev ignored SIGTERM for {timeout:.0f} s:\n{server.log_tail()}")
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while True:
        left = {pid for pid, (_, sid) in processes().items() if pid in tree or sid == server.proc.pid}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


@pytest.fixture
def dagster_dev(tmp_path):
    fleet = tmp_path / "fleet"
    generated = subprocess.run([str(BIN / "gpuledger"), "generate", "--out", str(fleet), "--gpus", "1", "--days", "1"],
                               capture_output=True, text=True, timeout=120, env={**os.environ, "DO_NOT_TRACK": "1"})
    assert generated.returncode == 0, generated.stderr
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml())
    port, log = free_port(), tmp_path / "dagster_dev.log"
    env = {**os.environ, "DAGSTER_HOME": str(home), "DO_NOT_TRACK": "1",
           "GPULEDGER_CONFIG": str(fleet / "gpuledger.yaml")}
    with log.open("wb") as out:
        command = [str(BIN / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)]
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=as_from_a_terminal)
    server = Server(port, log, proc, fleet / "gpuledger.yaml")
    try:
        wait_for_location(server)
        yield server
    finally:
        if proc.poll() is None:
            stop(server, timeout=10)


ASSETS = """{ assetNodes { assetKey { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } } } }"""
SCHEDULES = """query($repo: RepositorySelector!) { schedulesOrError(repositorySelector: $repo) { __typename
    ... on Schedules { results { name scheduleState { status } } } ... on PythonError { message } } }"""
SENSORS = """query($repo: RepositorySelector!) { sensorsOrError(repositorySelector: $repo) { __typename
    ... on Sensors { results { name sensorState { status } } } ... on PythonError { message } } }"""
LAUNCH = """mutation($params: ExecutionParams!) { launchRun(executionParams: $params) { __typename
    ... on LaunchRunSuccess { run { runId } } ... on Error { message } ... on PythonError { stack } } }"""
RUN = """query($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status
    eventConnection { events { __typename ... on MessageEvent { message }
        ... on ExecutionStepFailureEvent { stepKey error { message stack } } } } } } }"""
LATEST = """query($keys: [AssetKeyInput!]) { assetNodes(assetKeys: $keys) { assetKey { path }
    assetMaterializations(limit: 1) { runId metadataEntries { label ... on IntMetadataEntry { intValue } } } } }"""

TICKS = """query($sensor: SensorSelector!) { sensorOrError(sensorSelector: $sensor) { __typename
    ... on Sensor { sensorState { ticks(limit: 5) { status runIds } } } } }"""
SENSOR_RUNS = """query($sensor: String!) { runsOrError(filter: {tags: [{key: "dagster/sensor_name", value: $sensor}]}) {
    ... on Runs { results { runId status } } } }"""


def user_string(path: list[str]) -> str:
    return "/".join(path)


def check_definitions(server: Server) -> None:
    graph = defs.resolve_asset_graph()
    nodes = server.graphql(ASSETS)["assetNodes"]
    shown = {user_string(n["assetKey"]["path"]) for n in nodes}
    assert shown == {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {"config/settings", "raw/aws_cur", "marts/unit_economics_daily", "marts/cost_reconciliation"} <= shown

    shown_checks = set()
    for node in nodes:
        assert node["assetChecksOrError"]["__typename"] == "AssetChecks", node
        asset = user_string(node["assetKey"]["path"])
        shown_checks |= {(asset, check["name"]) for check in node["assetChecksOrError"]["checks"]}
    assert shown_checks == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert ("raw/aws_cur", "no_quarantined_rows") in shown_checks

    schedules = server.graphql(SCHEDULES, repo=REPOSITORY)["schedulesOrError"]
    assert schedules["__typename"] == "Schedules", schedules
    assert {s["name"]: s["scheduleState"]["status"] for s in schedules["results"]} == {
        s.name: s.default_status.value for s in defs.schedules}
    sensors = server.graphql(SENSORS, repo=REPOSITORY)["sensorsOrError"]
    assert sensors["__typename"] == "Sensors", sensors
    shown_sensors = {s["name"]: s["sensorState"]["status"] for s in sensors["results"]}
    assert shown_sensors == {s.name: s.default_status.value for s in defs.sensors}
    assert shown_sensors["new_billing_deliveries"] == "RUNNING"
    assert "daily_billing" in {s["name"] for s in schedules["results"]}


def materialize_config_tables(server: Server, timeout: float = 90) -> None:
    keys = [{"path": k.path} for k in CONFIG_KEYS.values()]
    params = {"selector": {**REPOSITORY, "jobName": "__ASSET_JOB", "assetSelection": keys},
              "mode": "default", "executionMetadata": {"tags": [{"key": "test", "value": "ui_smoke"}]}}
    launched = server.graphql(LAUNCH, params=params)["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    deadline = time.monotonic() + timeout
    while True:
        run = server.graphql(RUN, runId=run_id)["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    failures = [e for e in run["eventConnection"]["events"] if e["__typename"].endswith("FailureEvent")]
    assert run["status"] == "SUCCESS", (run["status"], failures or run["eventConnection"]["events"][-10:],
                                        server.log_tail())

    latest = server.graphql(LATEST, keys=keys)["assetNodes"]
    assert len(latest) == len(keys)
    shown = {}
    for node in latest:
        [materialization] = node["assetMaterializations"]
        assert materialization["runId"] == run_id, node
        shown[user_string(node["assetKey"]["path"])] = {
            m["label"]: m.get("intValue") for m in materialization["metadataEntries"]}["dagster/row_count"]
    config = load_config(server.config_path)
    assert shown == {key.to_user_string(): CONFIG_TABLES[name](config).num_rows for name, key in CONFIG_KEYS.items()}
    budgets = sum(t.monthly_budget is not None for t in config.teams.values())
    assert shown["config/team_budgets"] == budgets > 0 and shown["config/workloads"] == len(config.workloads) > 0


def check_sensors_tick_and_their_runs_wait(server: Server, timeout: float = 60) -> None:
    """The daemon evaluates new_billing_deliveries at start: it finds the fleet's CUR delivery and
    requests a run, which the test's instance holds in the queue."""
    sensor = {**REPOSITORY, "sensorName": "new_billing_deliveries"}
    deadline = time.monotonic() + timeout
    while True:
        ticks = server.graphql(TICKS, sensor=sensor)["sensorOrError"]["sensorState"]["ticks"]
        if any(t["status"] == "SUCCESS" for t in ticks) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [t for t in ticks if t["status"] == "SUCCESS" and t["runIds"]], (ticks, server.log_tail())
    runs = server.graphql(SENSOR_RUNS, sensor="new_billing_deliveries")["runsOrError"]["results"]
    assert runs and {r["status"] for r in runs} == {"QUEUED"}, runs


def check_asset_graph_page(server: Server, screenshot: Path) -> None:
    """The global asset lineage, groups collapsed as the UI first shows them, without a console error."""
    server.graphql("mutation { setNuxSeen }")  # a fresh instance greets a first visitor with a newsletter form
    graph = defs.resolve_asset_graph()
    groups = {graph.get(k).group_name for k in graph.get_all_asset_keys()}
    with chromium(1400, 900) as b:
        b.page.goto(f"{server.url}/asset-groups")
        b.page.get_by_text("Hide navigation").click()
        # the group list beside the graph, closed: what stays are the graph's own nodes
        b.page.locator("button:left-of(:text('Search and filter assets'))").first.click()
        for group in sorted(groups):
            b.page.get_by_text(group, exact=True).first.wait_for(timeout=30_000)
        assert b.page.get_by_placeholder("Jump to").count() == 0
        b.page.wait_for_load_state("networkidle")
        b.page.screenshot(path=screenshot)
        assert b.errors == [], f"console or page errors on {b.page.url}: {b.errors} (screenshot {screenshot})"
    if os.environ.get(UPDATE_SCREENSHOT) == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(screenshot, SCREENSHOT)


def test_dagster_dev_serves_the_definitions_runs_and_stops(dagster_dev, tmp_path):
    check_definitions(dagster_dev)
    materialize_config_tables(dagster_dev)
    check_sensors_tick_and_their_runs_wait(dagster_dev)
    check_asset_graph_page(dagster_dev, tmp_path / "asset_graph.png")
    left = stop(dagster_dev)
    assert dagster_dev.proc.returncode is not None
    running = command_lines(left)
    for pid in left:  # not left to load the machine for the tests after this one
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes of dagster dev outlived it: {running}\n{dagster_dev.log_tail()}"
