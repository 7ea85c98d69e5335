"""Landing zones against a real S3 API: moto's server on 127.0.0.1, spoken to over HTTP by boto3,
and against local folders. Both must list, fetch and map manifest URIs the same way."""

import calendar
import hashlib
import logging
import os
import socket
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import boto3
import dagster as dg
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from conftest import BUCKET, admin

from ingest.landing import (
    ENDPOINT_ENV,
    LandingFile,
    LocalLanding,
    ObjectChanged,
    S3Landing,
    key_after,
    open_landing,
)
from ingest.load import list_files
from orchestration.assets._ingest import retry_transient_s3

LOG = logging.getLogger(__name__)


@pytest.fixture
def prefix(request, s3_endpoint) -> str:
    return f"t/{request.node.name}"


def put(key: str, body: bytes) -> str:
    return admin().put_object(Bucket=BUCKET, Key=key, Body=body)["ETag"].strip('"')


def count_requests(landing: S3Landing) -> Counter:
    """Every HTTP request the landing's client sends, by operation, retries included."""
    sent: Counter = Counter()
    def record(event_name: str, **_) -> None:
        sent[event_name.rsplit(".", 1)[-1]] += 1  # before-send.s3.GetObject

    landing.client.meta.events.register("before-send.s3", record)
    return sent


def test_s3_lists_complete_objects_under_the_prefix_in_key_order(prefix, tmp_path):
    etags = {key: put(f"{prefix}/{key}", body) for key, body in {
        "cur/data/BILLING_PERIOD=2026-11/b.parquet": b"bb",
        "cur/data/BILLING_PERIOD=2026-10/a.parquet": b"a",
        "cur/metadata/BILLING_PERIOD=2026-11/cur-Manifest.json": b"{}",
        "cur/data/BILLING_PERIOD=2026-11/c.parquet.tmp": b"half",
        "cur/data/BILLING_PERIOD=2026-11/notes.txt": b"x",
    }.items()}
    put(f"{prefix}-other/cur/data/z.parquet", b"a sibling prefix that only shares the first characters")
    put(f"{prefix}/scratch.tmp.parquet.tmp", b"x")

    landing = open_landing(f"s3://{BUCKET}/{prefix}/", tmp_path)

    assert isinstance(landing, S3Landing)
    assert landing.uri == f"s3://{BUCKET}/{prefix}"
    files = landing.list((".parquet", "Manifest.json"))
    assert [(f.key, f.size, f.version) for f in files] == [
        ("cur/data/BILLING_PERIOD=2026-10/a.parquet", 1, etags["cur/data/BILLING_PERIOD=2026-10/a.parquet"]),
        ("cur/data/BILLING_PERIOD=2026-11/b.parquet", 2, etags["cur/data/BILLING_PERIOD=2026-11/b.parquet"]),
        ("cur/metadata/BILLING_PERIOD=2026-11/cur-Manifest.json", 2,
         etags["cur/metadata/BILLING_PERIOD=2026-11/cur-Manifest.json"]),
    ]
    assert files[0].version == hashlib.md5(b"a").hexdigest()  # a single-part upload's ETag is its MD5
    assert all(f.modified > 0 for f in files)
    assert landing.list((".tmp",)) == []  # in-progress uploads are never offered, whatever is asked


def test_s3_lists_every_object_of_a_prefix_holding_more_than_one_page(prefix, tmp_path):
    keys = [f"nvml/host-{i:04d}.jsonl.gz" for i in range(1105)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: put(f"{prefix}/{k}", b"{}"), keys))
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path)
    sent = count_requests(landing)

    files = landing.list((".jsonl.gz",))

    assert [f.key for f in files] == keys
    assert sent["ListObjectsV2"] == 2  # S3 returns at most 1000 keys a page


def test_s3_fetches_an_object_once_and_again_only_when_it_changes(prefix, tmp_path):
    key = "cur/data/BILLING_PERIOD=2026-11/x.parquet"
    put(f"{prefix}/{key}", b"first delivery")
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path / "cache")
    sent = count_requests(landing)

    [listed] = landing.list((".parquet",))
    path = landing.local_path(listed)
    assert path == tmp_path / "cache" / BUCKET / prefix / key
    assert path.read_bytes() == b"first delivery"
    assert path.stat().st_mtime == pytest.approx(listed.modified, abs=1)  # S3's time, for newest-manifest order
    inode = path.stat().st_ino

    # the next run lists again and finds the same ETag: nothing is fetched
    [again] = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path / "cache", landing.client).list((".parquet",))
    assert landing.local_path(again) == path
    assert sent["GetObject"] == 1
    assert path.stat().st_ino == inode

    put(f"{prefix}/{key}", b"restated delivery")
    [restated] = landing.list((".parquet",))
    assert restated.version != listed.version
    assert landing.local_path(restated).read_bytes() == b"restated delivery"
    assert sent["GetObject"] == 2
    assert [p.name for p in path.parent.iterdir()] == ["x.parquet"]  # no temporary files left behind


def test_s3_refetches_a_cached_copy_that_was_damaged(prefix, tmp_path):
    put(f"{prefix}/a.jsonl", b'{"ok": true}\n')
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path)
    [f] = landing.list((".jsonl",))
    landing.local_path(f).write_bytes(b'{"ok"')  # a half file, e.g. someone copied over it

    assert landing.local_path(f).read_bytes() == b'{"ok": true}\n'


def test_s3_refuses_bytes_other_than_the_version_listed(prefix, tmp_path):
    put(f"{prefix}/a.jsonl", b"old")
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path)
    [f] = landing.list((".jsonl",))
    put(f"{prefix}/a.jsonl", b"new")

    with pytest.raises(ObjectChanged, match="changed since it was listed"):
        landing.local_path(f)
    assert not landing.cache_path("a.jsonl").exists()

    admin().delete_object(Bucket=BUCKET, Key=f"{prefix}/a.jsonl")
    with pytest.raises(FileNotFoundError, match=f"s3://{BUCKET}/{prefix}/a.jsonl no longer exists"):
        landing.local_path(f)


def test_s3_exists(prefix, tmp_path):
    put(f"{prefix}/cur/data/BILLING_PERIOD=2026-11/x.parquet", b"x")
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path)

    assert landing.exists("cur/data/BILLING_PERIOD=2026-11/x.parquet")
    assert not landing.exists("cur/data/BILLING_PERIOD=2026-11/y.parquet")


def test_a_manifest_uri_in_another_bucket_maps_to_the_landing_key(prefix, tmp_path):
    # AWS wrote the export to s3://elsewhere/exports/; it was then copied under this landing prefix
    uri = "s3://elsewhere/exports/cur/data/BILLING_PERIOD=2026-11/cur-00001.snappy.parquet"
    put(f"{prefix}/cur/data/BILLING_PERIOD=2026-11/cur-00001.snappy.parquet", b"pq")
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path)

    key = landing.path_for_uri(uri, "/cur/data/")

    assert key == "cur/data/BILLING_PERIOD=2026-11/cur-00001.snappy.parquet"
    assert landing.exists(key)
    assert landing.local_path(LandingFile(key, 2, put(f"{prefix}/{key}", b"pq"))).read_bytes() == b"pq"


def test_a_manifest_uri_maps_to_the_same_key_in_a_local_copy(tmp_path):
    data = tmp_path / "cur" / "data" / "BILLING_PERIOD=2026-11"
    data.mkdir(parents=True)
    (data / "cur-00001.snappy.parquet").write_bytes(b"pq")
    landing = open_landing(str(tmp_path), tmp_path / "unused-cache")

    key = landing.path_for_uri("s3://billing-acct/exports/cur/data/BILLING_PERIOD=2026-11/cur-00001.snappy.parquet",
                               "/cur/data/")

    assert key == "cur/data/BILLING_PERIOD=2026-11/cur-00001.snappy.parquet"
    assert landing.exists(key)
    [f] = landing.list((".parquet",))
    assert landing.local_path(f).read_bytes() == b"pq"


def test_a_manifest_uri_outside_the_export_is_refused():
    with pytest.raises(ValueError, match=r"s3://b/other/x.parquet is not under the export's data folder.*'/cur/data/'"):
        key_after("s3://b/other/x.parquet", "/cur/data/")
    with pytest.raises(ValueError, match="unusable landing key"):
        key_after("s3://b/cur/data/../../../etc/passwd", "/cur/data/")


def test_a_local_folder_lists_like_a_bucket(tmp_path):
    (tmp_path / "nvml" / "host-a").mkdir(parents=True)
    (tmp_path / "nvml" / "host-a" / "2026-11-01.jsonl.gz").write_bytes(b"one")
    (tmp_path / "nvml" / "host-a" / "2026-11-02.jsonl.gz.tmp").write_bytes(b"still being written")
    (tmp_path / "nvml" / "b.jsonl").write_bytes(b"two!")
    (tmp_path / "nvml" / "readme.md").write_bytes(b"-")

    landing = open_landing(str(tmp_path), tmp_path / "cache")

    assert isinstance(landing, LocalLanding)
    assert landing.uri == str(tmp_path)
    assert [(f.key, f.size, f.version) for f in landing.list((".jsonl", ".jsonl.gz"))] == [
        ("nvml/b.jsonl", 4, hashlib.sha256(b"two!").hexdigest()),
        ("nvml/host-a/2026-11-01.jsonl.gz", 3, hashlib.sha256(b"one").hexdigest()),
    ]
    assert landing.list((".tmp",)) == []
    assert not landing.exists("nvml/host-a/2026-11-02.jsonl.gz")
    with pytest.raises(ValueError, match="unusable landing key"):
        landing.exists("../outside.jsonl")
    assert not (tmp_path / "cache").exists()  # a local landing never copies anything


def test_a_local_folder_follows_links_to_files_but_not_into_linked_folders(tmp_path):
    """As Path.rglob does: a link to a file is listed (with the file's size), a link to a folder
    is not entered (a link back up the tree would list forever)."""
    zone, elsewhere = tmp_path / "zone", tmp_path / "elsewhere"
    (zone / "host-a").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "shipped.jsonl").write_bytes(b"three")
    (zone / "host-a" / "linked.jsonl").symlink_to(elsewhere / "shipped.jsonl")
    (zone / "host-b").symlink_to(elsewhere, target_is_directory=True)
    (zone / "loop").symlink_to(zone, target_is_directory=True)
    (zone / "dangling.jsonl").symlink_to(tmp_path / "gone.jsonl")

    listed = LocalLanding(zone).list((".jsonl",), hash_content=False)

    assert [(f.key, f.size) for f in listed] == [("host-a/linked.jsonl", 5)]


def test_a_missing_local_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"landing folder {tmp_path / 'nope'} does not exist"):
        open_landing(str(tmp_path / "nope"), tmp_path / "cache")


def test_boto3s_own_endpoint_setting_works_without_gpuledgers(prefix, tmp_path, monkeypatch):
    put(f"{prefix}/a.jsonl", b"x")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", os.environ[ENDPOINT_ENV])
    monkeypatch.delenv(ENDPOINT_ENV)

    landing = open_landing(f"s3://{BUCKET}/{prefix}", tmp_path)

    assert [f.key for f in landing.list((".jsonl",))] == ["a.jsonl"]
    # throttling, 5xx and dropped connections are retried by botocore: 1 try + 5 retries
    assert landing.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 6}


def test_s3_uris_must_name_a_bucket(tmp_path, s3_endpoint):
    with pytest.raises(ValueError, match="names no bucket"):
        open_landing("s3:///prefix", tmp_path)
    assert S3Landing("s3://landing", tmp_path).uri == "s3://landing"
    assert Path(S3Landing("s3://landing", tmp_path).cache_path("a/b.gz")) == tmp_path / "landing" / "a" / "b.gz"


def test_an_unreachable_or_changing_landing_zone_retries_the_step_and_a_missing_bucket_fails_it(prefix, tmp_path):
    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    once = Config(retries={"mode": "standard", "max_attempts": 1}, s3={"addressing_style": "path"})
    down = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path, boto3.session.Session().client(
        "s3", endpoint_url=f"http://127.0.0.1:{closed}", config=once))
    with pytest.raises(dg.RetryRequested) as retry, retry_transient_s3(0, LOG):
        down.list((".gz",))
    assert (retry.value.max_retries, retry.value.seconds_to_wait) == (3, 30)

    etag = put(f"{prefix}/a.jsonl.gz", b"first")
    landing = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path)
    listed = landing.list((".gz",))
    put(f"{prefix}/a.jsonl.gz", b"replaced while the run read the listing")
    with pytest.raises(dg.RetryRequested), retry_transient_s3(0, LOG):
        landing.local_path(listed[0])
    assert listed[0].version == etag

    missing = S3Landing("s3://no-such-bucket/x", tmp_path)
    with pytest.raises(ClientError, match="NoSuchBucket"), retry_transient_s3(0, LOG):
        missing.list((".gz",))


DAY_KEYS = {  # key -> its day (the last date in it), or None: dated by when it was written
    "host-a/2026-09-01/nvml-host-a-20260901T23.jsonl.gz": "2026-09-01",
    "host-a/2026-09-02/nvml-host-a-20260902T00.jsonl.gz": "2026-09-02",
    "host-a/2026-09-02/nvml-host-a-20260902T23.jsonl.gz": "2026-09-02",
    "host-a/2026-09-03/nvml-host-a-20260903T00.jsonl.gz": "2026-09-03",
    "host-b/2026-09-01/late-20260902.jsonl.gz": "2026-09-02",  # the last date in a key is its day
    "host-b/undated.jsonl.gz": None,
}


def test_a_days_files_are_listed_by_the_dates_in_their_keys_or_else_when_they_were_written(prefix, tmp_path):
    """A day's run lists only that day's files: from S3 by key, and locally without a stat of the
    files whose keys date them to other days (a large fleet's month is over a million files)."""
    for key in DAY_KEYS:
        put(f"{prefix}/{key}", b"{}")
        (tmp_path / "local" / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "local" / key).write_bytes(b"{}")
    written = calendar.timegm((2026, 9, 2, 12, 0, 0))
    os.utime(tmp_path / "local" / "host-b/undated.jsonl.gz", (written, written))
    local = LocalLanding(tmp_path / "local")
    s3 = S3Landing(f"s3://{BUCKET}/{prefix}", tmp_path / "cache")
    sep_2 = (date(2026, 9, 2), date(2026, 9, 3))
    dated = [k for k, day in DAY_KEYS.items() if day == "2026-09-02"]

    assert [f.key for _, f in list_files([local], (".jsonl.gz",), sep_2)] == sorted([*dated, "host-b/undated.jsonl.gz"])
    # written today, so not on 2 September
    assert [f.key for _, f in list_files([s3], (".jsonl.gz",), sep_2)] == sorted(dated)
    assert len(list_files([local, s3], (".jsonl.gz",))) == 2 * len(DAY_KEYS)
