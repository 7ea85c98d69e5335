"""The one resource the Python assets need: the validated config and the warehouse it names."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import dagster as dg
import duckdb
from pydantic import Field

from ingest.config import Config, config_path_from_env, load_config
from ingest.landing import Landing, open_landing
from ingest.warehouse import connect

# Every step that writes the DuckDB file runs in this pool (limit 1 in dagster.yaml): DuckDB
# allows one writing process at a time.
WRITER_POOL = "duckdb_writer"


class GpuledgerResource(dg.ConfigurableResource):
    """gpuledger.yaml (validated when a run starts, before any work) and the warehouse file."""

    config_path: str = Field(
        default_factory=lambda: str(config_path_from_env()),
        description="Path to gpuledger.yaml; defaults to $GPULEDGER_CONFIG or ./gpuledger.yaml",
    )

    @cached_property
    def config(self) -> Config:
        return load_config(self.config_path)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        _ = self.config  # a bad config fails here, before any asset does work

    def landing(self, location: str) -> Landing:
        """A source location as a landing zone; S3 objects are cached beside the warehouse."""
        cfg = self.config
        return open_landing(cfg.resolve(location), cfg.warehouse_path.parent / "landing-cache")

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.config.warehouse_path) as con:
            yield con
