"""The resources: the validated config and the warehouse it names, and where alerts go."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource
from dbt.version import __version__ as DBT_CORE_VERSION
from packaging import version
from pydantic import Field

from ingest.alerts import Delivery, Sender, make_sender
from ingest.config import Config, Slack, config_path_from_env, load_config
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
        with connect(self.config.warehouse_path, memory_limit=self.config.memory_limit) as con:
            yield con


class DbtResource(DbtCliResource):
    """dagster-dbt's resource without two costs it pays on every invocation, 2.5 s of each run's
    dbt steps on a small fleet: it asks the dbt executable for its version (a 1.6 s subprocess;
    ours is the dbt-core installed beside this Python), and it builds an in-process adapter (0.8 s)
    that only serves fetch_row_counts and column metadata, which gpuledger reads itself."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(DBT_CORE_VERSION)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> None:
        return None


class SlackResource(dg.ConfigurableResource):
    """Where alerts go: Slack when the environment variables gpuledger.yaml names
    (`alerts.slack.bot_token_env`, `alerts.slack.webhook_url_env`) are set, the console otherwise.

    The secrets are read with `dg.EnvVar(name).get_value()` when a sender is built, not bound as
    `EnvVar` config fields: the names live in gpuledger.yaml (known only once a run loads it), and
    an unset `EnvVar` field fails every run, where an unset variable here means "print instead"."""

    pace_seconds: float = Field(Delivery.pace_seconds, ge=0, description="least time between two posts to a channel")
    rate_limit_retries: int = Field(Delivery.rate_limit_retries, ge=0,
                                    description="retries after a 429, each after its Retry-After")
    server_error_retries: int = Field(Delivery.server_error_retries, ge=0,
                                      description="retries after a 500 or 503 before the run fails")
    retry_backoff_seconds: float = Field(Delivery.retry_backoff_seconds, ge=0,
                                         description="first backoff after a server or connection error")
    timeout_seconds: int = Field(Delivery.timeout_seconds, ge=1)

    def sender(self, slack: Slack, out: Callable[[str], None]) -> Sender:
        delivery = Delivery(self.pace_seconds, self.rate_limit_retries, self.server_error_retries,
                            self.retry_backoff_seconds, self.timeout_seconds)
        return make_sender(slack, dg.EnvVar(slack.webhook_url_env).get_value(),
                           dg.EnvVar(slack.bot_token_env).get_value(), delivery, out)
