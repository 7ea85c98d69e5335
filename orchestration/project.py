"""The dbt project, and its manifest. Kept apart from the @dbt_assets module on purpose: preparing
the manifest must not import the code that needs it."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"
_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "macros", "seeds", "tests")

# The dbt installed beside this Python (a venv used without activating it has no dbt on PATH).
_venv_dbt = Path(sys.executable).parent / "dbt"
DBT_EXECUTABLE = str(_venv_dbt) if _venv_dbt.exists() else (shutil.which("dbt") or "dbt")

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


def manifest_is_stale() -> bool:
    """True when the manifest is missing or older than any file of the dbt project."""
    manifest = dbt_project.manifest_path
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    files = (p for name in _SOURCES for p in [DBT_PROJECT_DIR / name, *(DBT_PROJECT_DIR / name).rglob("*")])
    return any(p.is_file() and p.stat().st_mtime > built for p in files)


def run_dbt(*args: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(
        [DBT_EXECUTABLE, *args, "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR, check=True, env={**os.environ, "DO_NOT_TRACK": "1", **(env or {})},
    )


def parse() -> None:
    run_dbt("parse", "--quiet")


# Parse when the project changed since the last parse, wherever the definitions load (CLI, tests,
# `dagster dev`, `dg`). DbtProject.prepare_if_dev() would look for dbt on PATH, which a venv used
# without activating it does not have.
if manifest_is_stale():
    parse()
