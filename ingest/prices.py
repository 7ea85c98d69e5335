"""Cloud GPU list prices for the TCO comparison: what the same GPU-hours would cost in the cloud.

The seed `dbt_project/seeds/cloud_gpu_prices.csv` holds hand-checked prices, each naming its
source. The functions here refresh them from the providers' own price APIs: the AWS Price List
API (boto3 `pricing`) and the GCP Cloud Billing Catalog API (google-cloud-billing). Both need
credentials and network, so nothing in the pipeline calls them unless asked; both take an
endpoint so that tests can answer them from a local HTTP server speaking the real wire format.

Every price is a Decimal from the API's decimal string (AWS) or Money units + nanos (GCP); no
float ever touches money.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import astuple, dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ingest.files import rows_to_table

if TYPE_CHECKING:
    import boto3
    from google.auth.credentials import Credentials
    from google.cloud.billing_v1 import Sku

# FOCUS PricingCategory: on-demand, spot, commitment (here always a 1-year one).
PRICING_CATEGORIES = ("Standard", "Dynamic", "Committed")
MONEY = pa.decimal128(38, 10)  # the warehouse's money type
MONEY_SCALE = Decimal("1e-10")

PRICE_SCHEMA = pa.schema([
    ("provider", pa.string()),
    ("instance_type", pa.string()),
    ("region", pa.string()),
    ("gpu_model", pa.string()),
    ("gpu_count", pa.int32()),
    ("pricing_category", pa.string()),
    ("price_per_hour", MONEY),
    ("currency", pa.string()),
    ("price_per_gpu_hour", MONEY),
    ("effective_date", pa.date32()),
    ("source", pa.string()),
])


class PriceSourceError(RuntimeError):
    """A price API could not be asked or answered badly; the message says what to fix."""


class MissingCredentialsError(PriceSourceError):
    """No credentials for a price API; the message names the ones it needs (never their values)."""


@dataclass(frozen=True)
class GpuPrice:
    """One row of `cloud_gpu_prices`: the seed's columns, in the seed's order."""

    provider: str  # as FOCUS spells it: AWS, Google Cloud, Microsoft
    instance_type: str  # the instance type, or the SKU id where the provider prices GPUs alone (GCP)
    region: str | None
    gpu_model: str | None  # None when the API does not say which GPU it is
    gpu_count: int
    pricing_category: str
    price_per_hour: Decimal
    currency: str
    price_per_gpu_hour: Decimal
    effective_date: date
    source: str


def per_gpu_hour(price_per_hour: Decimal, gpu_count: int) -> Decimal:
    """The price of one GPU-hour at the warehouse's money scale (a division by 8 is exact anyway)."""
    if gpu_count <= 0:
        raise ValueError(f"gpu_count must be positive, got {gpu_count}")
    return (price_per_hour / gpu_count).quantize(MONEY_SCALE)


def prices_to_table(rows: Iterable[GpuPrice]) -> pa.Table:
    """The rows as an Arrow table with PRICE_SCHEMA (money as DECIMAL(38,10))."""
    # Arrow refuses a Decimal with more places than the column's scale rather than round it.
    scaled = (replace(r, price_per_hour=r.price_per_hour.quantize(MONEY_SCALE),
                      price_per_gpu_hour=r.price_per_gpu_hour.quantize(MONEY_SCALE)) for r in rows)
    return rows_to_table([astuple(r) for r in scaled], PRICE_SCHEMA)


def read_price_csv(path: Path) -> list[GpuPrice]:
    """The seed (or a file written like it) as rows; an empty region or gpu_model is None."""
    with path.open(newline="", encoding="utf-8") as f:
        return [
            GpuPrice(
                provider=row["provider"],
                instance_type=row["instance_type"],
                region=row["region"] or None,
                gpu_model=row["gpu_model"] or None,
                gpu_count=int(row["gpu_count"]),
                pricing_category=row["pricing_category"],
                price_per_hour=Decimal(row["price_per_hour"]),
                currency=row["currency"],
                price_per_gpu_hour=Decimal(row["price_per_gpu_hour"]),
                effective_date=date.fromisoformat(row["effective_date"]),
                source=row["source"],
            )
            for row in csv.DictReader(f)
        ]


def read_gpu_models(path: Path) -> dict[str, str]:
    """instance_type -> gpu_model from `gpu_instance_types.csv`: the Price List has no GPU model name."""
    with path.open(newline="", encoding="utf-8") as f:
        return {row["instance_type"]: row["gpu_model"] for row in csv.DictReader(f)}


# ---------------------------------------------------------------------------------------------
# AWS Price List API

AWS_SOURCE = "AWS Price List API"
# The Price List API is served only from us-east-1, eu-central-1 and ap-south-1; each answers
# for every region, so the region asked about is a filter, not the endpoint.
AWS_PRICING_REGION = "us-east-1"
AWS_CREDENTIALS_HELP = (
    "AWS credentials not found: the AWS Price List API (pricing:GetProducts) needs credentials, "
    "e.g. AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance/SSO role"
)


def aws_filters(instance_type: str, region: str | None) -> list[dict[str, str]]:
    """GetProducts filters for one Linux, shared-tenancy, no-preinstalled-software instance type.

    capacitystatus=Used keeps the running-instance price and drops the capacity-reservation
    lines (UnusedCapacityReservation, AllocatedCapacityReservation) that share the type.
    region None asks for every region.
    """
    terms = {
        "instanceType": instance_type,
        "operatingSystem": "Linux",
        "tenancy": "Shared",
        "preInstalledSw": "NA",
        "capacitystatus": "Used",
    }
    if region is not None:
        terms["regionCode"] = region
    return [{"Type": "TERM_MATCH", "Field": k, "Value": v} for k, v in terms.items()]


def _hourly_price(term: Mapping[str, Any]) -> tuple[Decimal, str] | None:
    """The (price, currency) of a term's hourly dimension, or None when it has none.

    An All/Partial Upfront reservation also has an "Upfront Fee" dimension (unit Quantity);
    only the hourly one is a price per hour.
    """
    hourly = [d for d in term.get("priceDimensions", {}).values() if d.get("unit") in ("Hrs", "Hours")]
    if len(hourly) != 1:
        return None
    per_unit: Mapping[str, str] = hourly[0].get("pricePerUnit", {})
    currency = "USD" if "USD" in per_unit else next(iter(per_unit), None)
    if currency is None:
        return None
    return Decimal(per_unit[currency]), currency


def _term_date(term: Mapping[str, Any], fallback: str | None) -> date:
    stamp = term.get("effectiveDate") or fallback
    if not stamp:
        raise PriceSourceError("a Price List term has neither effectiveDate nor publicationDate")
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()


def _is_one_year_no_upfront_standard(term: Mapping[str, Any]) -> bool:
    attrs = term.get("termAttributes", {})
    return (attrs.get("LeaseContractLength") == "1yr" and attrs.get("PurchaseOption") == "No Upfront"
            and attrs.get("OfferingClass") == "standard")


def parse_aws_price_item(item: str | Mapping[str, Any], gpu_models: Mapping[str, str] | None = None) -> list[GpuPrice]:
    """The on-demand (Standard) and 1-year No Upfront standard reserved (Committed) hourly prices
    of one Price List product. `item` is one entry of GetProducts' PriceList, a JSON string.

    A product without a GPU count, or whose price is zero, gives no rows: it is not a GPU price.
    """
    product = json.loads(item) if isinstance(item, str) else item
    attrs = product.get("product", {}).get("attributes", {})
    instance_type = attrs.get("instanceType")
    gpus = attrs.get("gpu", "")
    if not instance_type or not gpus.isdigit() or int(gpus) == 0:
        return []
    gpu_count = int(gpus)
    terms = product.get("terms", {})
    chosen = [("Standard", t) for t in terms.get("OnDemand", {}).values()]
    chosen += [("Committed", t) for t in terms.get("Reserved", {}).values() if _is_one_year_no_upfront_standard(t)]
    rows = []
    for category, term in chosen:
        priced = _hourly_price(term)
        if priced is None or priced[0] <= 0:
            continue
        price, currency = priced
        rows.append(GpuPrice(
            provider="AWS",
            instance_type=instance_type,
            region=attrs.get("regionCode"),
            gpu_model=(gpu_models or {}).get(instance_type),
            gpu_count=gpu_count,
            pricing_category=category,
            price_per_hour=price,
            currency=currency,
            price_per_gpu_hour=per_gpu_hour(price, gpu_count),
            effective_date=_term_date(term, product.get("publicationDate")),
            source=AWS_SOURCE,
        ))
    return rows


def fetch_aws_prices(
    instance_types: Sequence[str],
    regions: Sequence[str] | None = ("us-east-1",),
    *,
    gpu_models: Mapping[str, str] | None = None,
    session: boto3.Session | None = None,
    endpoint_url: str | None = None,
    api_region: str = AWS_PRICING_REGION,
    page_size: int = 100,
) -> list[GpuPrice]:
    """Standard and Committed (1-year) prices of each instance type in each region (None: all).

    `endpoint_url` points the client elsewhere (tests). Raises MissingCredentialsError when the
    session has no credentials and PriceSourceError when the API refuses or cannot be reached.
    """
    # Imported here so that importing this module (the Dagster code location does) stays cheap.
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, PartialCredentialsError

    session = session or boto3.Session()
    # Asked before any request so that a missing key fails at once, not after retries.
    try:
        found = session.get_credentials()
    except (NoCredentialsError, PartialCredentialsError):  # e.g. an access key id without its secret
        found = None
    if found is None:
        raise MissingCredentialsError(AWS_CREDENTIALS_HELP)
    client = session.client(
        "pricing", region_name=api_region, endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=10, read_timeout=60),
    )
    rows: list[GpuPrice] = []
    # `from None` below: the caller needs what to fix, not a stack of botocore internals.
    try:
        for instance_type in instance_types:
            for region in regions if regions is not None else [None]:
                pages = client.get_paginator("get_products").paginate(
                    ServiceCode="AmazonEC2", FormatVersion="aws_v1", Filters=aws_filters(instance_type, region),
                    PaginationConfig={"PageSize": page_size},
                )
                for page in pages:
                    for item in page.get("PriceList", []):
                        rows += parse_aws_price_item(item, gpu_models)
    except (NoCredentialsError, PartialCredentialsError):
        raise MissingCredentialsError(AWS_CREDENTIALS_HELP) from None
    except ClientError as err:
        error = err.response.get("Error", {})
        raise PriceSourceError(
            f"the AWS Price List API refused GetProducts: {error.get('Code', 'unknown error')}: "
            f"{error.get('Message', '')} (the credentials need the pricing:GetProducts permission)"
        ) from None
    except BotoCoreError as err:
        raise PriceSourceError(f"could not ask the AWS Price List API: {err}") from None
    except (ValueError, ArithmeticError, KeyError, AttributeError) as err:
        raise PriceSourceError(f"the AWS Price List API answered in an unexpected shape: {err!r}") from None
    return sorted(rows, key=_order)


# ---------------------------------------------------------------------------------------------
# GCP Cloud Billing Catalog API

GCP_SOURCE = "GCP Cloud Billing Catalog API"
COMPUTE_ENGINE_SERVICE = "services/6F81-5844-456A"
# Catalog usage types -> FOCUS PricingCategory; Commit3Yr and others are not compared.
GCP_CATEGORIES = {"OnDemand": "Standard", "Preemptible": "Dynamic", "Commit1Yr": "Committed"}
GCP_CREDENTIALS_HELP = (
    "Google Cloud credentials not found: the Cloud Billing Catalog API needs Application Default "
    "Credentials (GOOGLE_APPLICATION_CREDENTIALS naming a service-account key file, or "
    "`gcloud auth application-default login`) or an API key"
)

# Catalog descriptions name the GPU ("Nvidia H100 80GB GPU running in Americas", "Spot
# Preemptible Nvidia Tesla A100 GPU running in ...", "Commitment v1: Nvidia L4 GPU in ...").
# Order matters: the A100 with its memory size before the plain (40 GB) A100.
_GCP_GPU_MODELS = (
    (re.compile(r"\bH200\b"), "H200 141GB"),
    (re.compile(r"\bH100\b"), "H100 80GB"),
    (re.compile(r"\bB200\b"), "B200 180GB"),
    (re.compile(r"\bA100 80GB\b"), "A100 80GB"),
    (re.compile(r"\bA100\b"), "A100 40GB"),
    (re.compile(r"\bL4\b"), "L4 24GB"),
    (re.compile(r"\bT4\b"), "T4 16GB"),
    (re.compile(r"\bV100\b"), "V100 16GB"),
)


def money_to_decimal(units: int, nanos: int) -> Decimal:
    """google.type.Money (whole units + billionths, both with the amount's sign) as a Decimal."""
    return Decimal(units) + Decimal(nanos).scaleb(-9)


def gcp_gpu_model(description: str) -> str | None:
    return next((model for pattern, model in _GCP_GPU_MODELS if pattern.search(description)), None)


def parse_gcp_sku(sku: Sku, regions: Collection[str] | None = None) -> list[GpuPrice]:
    """One row per service region for a GPU SKU priced per GPU-hour; nothing for other SKUs.

    Virtual Workstation SKUs are skipped: they add a graphics licence to the GPU, so their price
    is not what the GPU-hour itself costs.
    """
    category = GCP_CATEGORIES.get(sku.category.usage_type)
    if sku.category.resource_group != "GPU" or category is None or "Virtual Workstation" in sku.description:
        return []
    if not sku.pricing_info:
        return []
    info = sku.pricing_info[0]
    expression = info.pricing_expression
    if expression.usage_unit != "h" or not expression.tiered_rates:
        return []
    money = expression.tiered_rates[-1].unit_price
    price = money_to_decimal(money.units, money.nanos)
    if price <= 0:
        return []
    effective = info.effective_time.date() if info.effective_time else datetime.now(UTC).date()
    return [
        GpuPrice(
            provider="Google Cloud",
            instance_type=sku.sku_id,
            region=region,
            gpu_model=gcp_gpu_model(sku.description),
            gpu_count=1,
            pricing_category=category,
            price_per_hour=price,
            currency=money.currency_code,
            price_per_gpu_hour=per_gpu_hour(price, 1),
            effective_date=effective,
            source=GCP_SOURCE,
        )
        for region in sku.service_regions
        if regions is None or region in regions
    ]


def _gcp_credentials() -> Credentials:
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default()
    except DefaultCredentialsError:
        hint = " (GOOGLE_APPLICATION_CREDENTIALS is set but could not be loaded)" if os.environ.get(
            "GOOGLE_APPLICATION_CREDENTIALS") else ""
        raise MissingCredentialsError(GCP_CREDENTIALS_HELP + hint) from None
    return credentials


def fetch_gcp_prices(
    regions: Collection[str] | None = None,
    *,
    currency_code: str = "USD",
    credentials: Credentials | None = None,
    api_key: str | None = None,
    api_endpoint: str | None = None,
    page_size: int = 5000,
) -> list[GpuPrice]:
    """Per-GPU-hour list prices (OnDemand, Preemptible, Commit1Yr) of Compute Engine's GPU SKUs.

    Credentials are `credentials`, else `api_key`, else Application Default Credentials.
    `api_endpoint` must carry its scheme for plain HTTP ("http://127.0.0.1:8080"): the REST
    transport prefixes a bare host with https://.
    """
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from google.cloud.billing_v1 import CloudCatalogClient
    from requests import RequestException

    options: dict[str, str] = {}
    if api_endpoint:
        options["api_endpoint"] = api_endpoint
    if credentials is None and api_key:
        options["api_key"] = api_key
    elif credentials is None:
        credentials = _gcp_credentials()
    client = CloudCatalogClient(credentials=credentials, transport="rest", client_options=options)
    rows: list[GpuPrice] = []
    # `from None` below: the caller needs what to fix, not a stack of transport internals.
    try:
        request = {"parent": COMPUTE_ENGINE_SERVICE, "currency_code": currency_code, "page_size": page_size}
        for sku in client.list_skus(request=request):
            rows += parse_gcp_sku(sku, regions)
    except GoogleAuthError as err:
        raise MissingCredentialsError(f"{GCP_CREDENTIALS_HELP}; the ones found were refused: "
                                      f"{type(err).__name__}") from None
    except GoogleAPIError as err:
        raise PriceSourceError(f"the Cloud Billing Catalog API refused list_skus: {err}") from None
    except RequestException as err:
        raise PriceSourceError(f"could not reach the Cloud Billing Catalog API: {type(err).__name__}") from None
    return sorted(rows, key=_order)


def _order(row: GpuPrice) -> tuple:
    return (row.provider, row.instance_type, row.region or "", PRICING_CATEGORIES.index(row.pricing_category))
