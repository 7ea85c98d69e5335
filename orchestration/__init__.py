"""Dagster wiring for gpuledger: assets call `ingest`, resources hold connections, `definitions` assembles."""
