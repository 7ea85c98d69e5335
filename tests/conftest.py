import functools
import json
import os
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from ingest.landing import ENDPOINT_ENV

os.environ.setdefault("DO_NOT_TRACK", "1")

ANOMALY_FLEET = {"gpus": 12, "days": 14, "seed": 42}
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"
BUCKET = "landing"


def pytest_configure(config: pytest.Config) -> None:
    # Dagster's in-process runs need an instance home; keep test runs out of the user's.
    os.environ.pop("DAGSTER_HOME", None)


@pytest.fixture(scope="session")
def hand_fleet(tmp_path_factory) -> Path:
    """The gpuledger.yaml of test_allocation's hand-computed fleet, built once for every module that reads it."""
    from test_allocation import build_hand_fleet

    return build_hand_fleet(tmp_path_factory.mktemp("hand"))


@pytest.fixture(scope="session")
def anomaly_fleet(tmp_path_factory) -> tuple[Path, list[dict], Path]:
    """The demo fleet with labelled, injected anomalies (test_spend_anomalies' docstring), built once
    through the whole pipeline for every module that reads it: (warehouse, the generator's
    injected_anomalies labels, gpuledger.yaml)."""
    from pipeline import materialize_all

    from ingest.config import load_config
    from ingest.demo_fleet import generate

    generated = generate(tmp_path_factory.mktemp("anomalies"), **ANOMALY_FLEET)
    result = materialize_all(generated.config_path)
    assert result.success
    labels = json.loads((generated.out / "ground_truth.json").read_text())["injected_anomalies"]
    return load_config(generated.config_path).warehouse_path, labels, generated.config_path


@pytest.fixture(scope="session")
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"the shared samples are expected at {SAMPLES} (a checkout beside ../shared)")
    return SAMPLES


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as env:
        # Dummy credentials, and nothing from the developer's own AWS setup may leak in.
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
            env.delenv(name, raising=False)
        env.setenv("AWS_CONFIG_FILE", str(home / "config"))
        env.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.setenv(ENDPOINT_ENV, endpoint)
        admin.cache_clear()
        admin().create_bucket(Bucket=BUCKET)
        yield endpoint
        admin.cache_clear()
    server.stop()


@functools.cache
def admin():
    """A plain client for arranging the bucket, separate from the one under test (and shared by
    threads: a client is thread-safe, and building one takes a good part of a second)."""
    return boto3.session.Session().client("s3", endpoint_url=os.environ[ENDPOINT_ENV])
