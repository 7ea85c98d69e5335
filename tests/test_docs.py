"""`gpuledger docs`: dbt's site documents every mart and every one of its columns."""

import json
import os
import subprocess
import sys
from pathlib import Path

from orchestration.project import DBT_PROJECT_DIR

GPULEDGER = str(Path(sys.executable).parent / "gpuledger")


def test_docs_describe_every_mart_column(hand_fleet):
    done = subprocess.run([GPULEDGER, "docs", "--no-serve", "--config", str(hand_fleet)],
                          capture_output=True, text=True, timeout=600, env={**os.environ, "DO_NOT_TRACK": "1"})
    assert done.returncode == 0, done.stderr[-2000:]
    target = DBT_PROJECT_DIR / "target" / "docs"
    assert (target / "index.html").exists()
    manifest = json.loads((target / "manifest.json").read_text())
    catalog = json.loads((target / "catalog.json").read_text())
    marts = {n["name"]: n for n in manifest["nodes"].values()
             if n["resource_type"] == "model" and n["schema"] == "marts"}
    assert {"cost_ledger_hourly", "unit_economics_daily", "team_spend_daily", "gpu_efficiency_daily", "training_runs",
            "tco_comparison", "cost_reconciliation", "focus_cost_and_usage"} <= set(marts)
    undocumented = [
        f"{name}.{column}"
        for key, table in catalog["nodes"].items() if (name := key.split(".")[-1]) in marts
        for column in table["columns"]
        if not {k.lower(): c for k, c in marts[name]["columns"].items()}.get(column.lower(), {}).get("description")
    ]
    assert all(m["description"] for m in marts.values())
    assert undocumented == []
