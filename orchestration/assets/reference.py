"""Reference data refreshed from the providers' price APIs, on request only (it needs
credentials and network; the seeded `reference.cloud_gpu_prices` works without either)."""

import dagster as dg

from ingest.prices import MissingCredentialsError, PriceSourceError, fetch_aws_prices, fetch_gcp_prices, prices_to_table
from ingest.prices import read_gpu_models as read_aws_gpu_models
from ingest.warehouse import replace_table
from orchestration.project import DBT_PROJECT_DIR
from orchestration.resources import WRITER_POOL, GpuledgerResource

CLOUD_GPU_PRICES_API = dg.AssetKey(["reference", "cloud_gpu_prices_api"])
GPU_INSTANCE_TYPES = DBT_PROJECT_DIR / "seeds" / "gpu_instance_types.csv"


@dg.asset(
    key=CLOUD_GPU_PRICES_API,
    group_name="reference",
    kinds={"aws", "gcp", "duckdb"},
    owners=["team:platform"],
    description="Current GPU list prices from the AWS Price List API (the seed's AWS instance types, us-east-1) "
    "and GCP's Cloud Billing Catalog (GPU SKUs, every region). Materialize it by hand when credentials are set; "
    "a provider without credentials is skipped with a warning.",
    pool=WRITER_POOL,
)
def cloud_gpu_prices_api(context: dg.AssetExecutionContext, gpuledger: GpuledgerResource) -> dg.MaterializeResult:
    gpu_models = read_aws_gpu_models(GPU_INSTANCE_TYPES)
    fetches = {
        "AWS": lambda: fetch_aws_prices(sorted(gpu_models), gpu_models=gpu_models),
        "Google Cloud": fetch_gcp_prices,
    }
    rows, skipped = [], []
    for provider, fetch in fetches.items():
        try:
            found = fetch()
        except MissingCredentialsError as err:
            context.log.warning(f"{provider} skipped: {err}")
            skipped.append(provider)
            continue
        except PriceSourceError as err:
            raise dg.Failure(f"{provider} price API: {err}") from None
        context.log.info(f"{provider}: {len(found)} prices")
        rows += found
    if not rows:
        raise dg.Failure(f"no price API answered ({', '.join(skipped)} had no credentials)")
    table = prices_to_table(rows)
    with gpuledger.connect() as con:
        con.execute("create schema if not exists reference")
        replace_table(con, "reference", "cloud_gpu_prices_api", table)
    return dg.MaterializeResult(metadata={"dagster/row_count": table.num_rows, "skipped": ", ".join(skipped)})
