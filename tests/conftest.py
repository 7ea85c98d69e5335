import os
from pathlib import Path

import pytest

os.environ.setdefault("DO_NOT_TRACK", "1")

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples"


def pytest_configure(config: pytest.Config) -> None:
    # Dagster's in-process runs need an instance home; keep test runs out of the user's.
    os.environ.pop("DAGSTER_HOME", None)


@pytest.fixture
def samples() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"the shared samples are expected at {SAMPLES} (a checkout beside ../shared)")
    return SAMPLES
