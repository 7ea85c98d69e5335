"""config.process_workloads grows with the telemetry (a restarted container is a new holder) without
re-reading history, and without its growth counting as a config change that rebuilds every day."""

from datetime import datetime

import duckdb
import pytest

from ingest.config import Workload, WorkloadMatch
from ingest.warehouse import config_fingerprint, replace_table
from ingest.workloads import known_workloads, newest_ingested, resolve_all, rules, rules_digest, signatures

WORKLOADS = [Workload(name="chat", kind="inference", owner_team="search", models=["llama"],
                      match=WorkloadMatch(container_id="chat-*")),
             Workload(name="tune", kind="training", owner_team="research", match=WorkloadMatch(process_name="train*"))]
FIRST_LOAD, SECOND_LOAD = datetime(2026, 11, 1, 1), datetime(2026, 11, 2, 1)


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("create schema raw; create schema config")
    con.execute("""create table raw.nvml_processes (host varchar, gpu_index integer, gpu_uuid varchar,
        process_name varchar, container_id varchar, pod_uid varchar, env varchar, _ingested_at timestamp)""")
    con.execute("create table raw.nvml_gpu_samples (gpu_uuid varchar, parent_gpu_uuid varchar, _ingested_at timestamp)")
    con.execute("create table config.settings (currency varchar)")
    con.execute("insert into config.settings values ('USD')")
    return con


def add_process(con: duckdb.DuckDBPyConnection, gpu: int, name: str, container: str, at: datetime) -> None:
    con.execute("insert into raw.nvml_processes values ('p5-1', ?, ?, ?, ?, null, '{}', ?)",
                [gpu, f"GPU-{gpu}", name, container, at])
    con.execute("insert into raw.nvml_gpu_samples values (?, null, ?)", [f"GPU-{gpu}", at])


def build(con: duckdb.DuckDBPyConnection, since: datetime | None) -> dict[str, str | None]:
    table = resolve_all(signatures(con, since), WORKLOADS)
    replace_table(con, "config", "process_workloads", table)
    return dict(zip(table["container_id"].to_pylist(), table["workload"].to_pylist(), strict=True))


def test_a_new_container_is_added_from_the_new_rows_alone(con):
    add_process(con, 0, "vllm", "chat-a1", FIRST_LOAD)
    assert build(con, None) == {"chat-a1": "chat"}
    through = newest_ingested(con)
    assert through == FIRST_LOAD
    # the chat pod restarted (a new container id), and a fine-tune started on GPU 1
    add_process(con, 0, "vllm", "chat-b2", SECOND_LOAD)
    add_process(con, 1, "train.py", "job-7", SECOND_LOAD)
    # a row from before the watermark that the table never saw is not read again: proof that the
    # run read only the new rows (in a real warehouse every old row's holder is already known)
    add_process(con, 2, "vllm", "chat-old", FIRST_LOAD)
    assert build(con, through) == {"chat-a1": "chat", "chat-b2": "chat", "job-7": "tune"}
    # with nothing known (a new Dagster instance), every raw row is read
    assert build(con, None) == {"chat-a1": "chat", "chat-b2": "chat", "chat-old": "chat", "job-7": "tune"}


def test_new_holders_are_no_config_change_but_a_new_rule_is(con):
    add_process(con, 0, "vllm", "chat-a1", FIRST_LOAD)
    build(con, None)
    before = config_fingerprint(con)
    add_process(con, 0, "vllm", "chat-b2", SECOND_LOAD)
    build(con, FIRST_LOAD)
    assert config_fingerprint(con) == before
    con.execute("update config.settings set currency = 'EUR'")
    assert config_fingerprint(con) != before
    narrower = [WORKLOADS[0].model_copy(update={"match": WorkloadMatch(container_id="chat-a*")}), WORKLOADS[1]]
    assert rules(narrower) != rules(WORKLOADS)


def test_known_holders_keep_their_answer_and_only_new_ones_are_resolved(con):
    add_process(con, 0, "vllm", "chat-a1", FIRST_LOAD)
    build(con, None)
    # an answer the table holds is taken as it is (here one the rules would not give, to tell it
    # apart), so a run resolves only the holders it has not seen
    con.execute("update config.process_workloads set workload = 'kept' where container_id = 'chat-a1'")
    add_process(con, 1, "train.py", "job-7", SECOND_LOAD)
    table = resolve_all(signatures(con, FIRST_LOAD), WORKLOADS, known_workloads(con))
    assert dict(zip(table["container_id"].to_pylist(), table["workload"].to_pylist(), strict=True)) == {
        "chat-a1": "kept", "job-7": "tune"}
    # changed rules (a new digest) resolve every holder again
    narrower = [WORKLOADS[0].model_copy(update={"match": WorkloadMatch(container_id="chat-a*")}), WORKLOADS[1]]
    assert rules_digest(narrower) != rules_digest(WORKLOADS) == rules_digest(list(WORKLOADS))
    assert build(con, FIRST_LOAD) == {"chat-a1": "chat", "job-7": "tune"}
