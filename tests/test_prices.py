"""Cloud GPU prices: the seed is sourced and consistent; the price-API refreshes speak the real wire
formats (a local HTTP server answers boto3 and google-cloud-billing as AWS and GCP would)."""

import csv
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pyarrow as pa
import pytest
from google.auth.credentials import AnonymousCredentials

from ingest.prices import (
    AWS_SOURCE,
    GCP_SOURCE,
    PRICE_SCHEMA,
    GpuPrice,
    MissingCredentialsError,
    PriceSourceError,
    fetch_aws_prices,
    fetch_gcp_prices,
    gcp_gpu_model,
    money_to_decimal,
    prices_to_table,
    read_gpu_models,
    read_price_csv,
)

SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"
PRICES_SEED = SEEDS / "cloud_gpu_prices.csv"
COLUMNS = ["provider", "instance_type", "region", "gpu_model", "gpu_count", "pricing_category", "price_per_hour",
           "currency", "price_per_gpu_hour", "effective_date", "source"]
GPU_MODELS = {"H100 80GB", "H200 141GB", "A100 40GB", "A100 80GB", "A10G 24GB", "L4 24GB", "L40S 48GB",
              "B200 180GB", "V100 16GB", "T4 16GB"}


# --- a local HTTP server that records what it receives --------------------------------------------

@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    body: bytes


Answer = Callable[[Received], tuple[int, dict[str, str], bytes]]


@contextmanager
def local_server(answer: Answer) -> Iterator[tuple[str, list[Received]]]:
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = Received(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            received.append(request)
            status, headers, payload = answer(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _handle

        def log_message(self, format, *args) -> None:  # keep pytest's output clean
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


# --- the seed -----------------------------------------------------------------------------------

def seed_rows() -> list[dict[str, str]]:
    with PRICES_SEED.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == COLUMNS
        return list(reader)


def test_seed_rows_are_sourced_dated_and_in_focus_vocabulary():
    rows = seed_rows()
    assert len(rows) >= 17
    for row in rows:
        assert row["source"].strip(), row
        date.fromisoformat(row["effective_date"])  # ISO date, or it raises
        assert row["provider"] in {"AWS", "Google Cloud", "Microsoft"}, row
        assert row["pricing_category"] in {"Standard", "Dynamic", "Committed"}, row
        assert row["gpu_model"] in GPU_MODELS, row
        assert row["currency"] == "USD", row
        count, price = int(row["gpu_count"]), Decimal(row["price_per_hour"])
        per_gpu = Decimal(row["price_per_gpu_hour"])
        assert count > 0 and price > 0, row
        assert round(price / count, 4) == round(per_gpu, 4), row
    keys = [(r["provider"], r["instance_type"], r["region"], r["pricing_category"]) for r in rows]
    assert len(keys) == len(set(keys)), "one price per instance type, region and category"


def test_seed_agrees_with_the_gpu_instance_types_seed():
    with (SEEDS / "gpu_instance_types.csv").open(newline="", encoding="utf-8") as f:
        known = {(r["provider"], r["instance_type"]): (r["gpu_model"], int(r["gpu_count"])) for r in csv.DictReader(f)}
    for row in seed_rows():
        assert known.get((row["provider"], row["instance_type"])) == (row["gpu_model"], int(row["gpu_count"])), row


def test_seed_holds_the_reference_note_figures():
    prices = {(r["instance_type"], r["pricing_category"]): r for r in seed_rows()}
    p5 = prices["p5.48xlarge", "Standard"]
    assert (p5["provider"], p5["region"], p5["gpu_model"], p5["price_per_hour"], p5["currency"],
            p5["price_per_gpu_hour"], p5["effective_date"]) == (
        "AWS", "us-east-1", "H100 80GB", "55.04", "USD", "6.88", "2025-11-30")
    assert "instances.vantage.sh" in p5["source"] and "tsaol/aws-gpu" in p5["source"]
    assert Decimal(prices["p4d.24xlarge", "Standard"]["price_per_hour"]) == Decimal("21.96")
    assert Decimal(prices["p4d.24xlarge", "Committed"]["price_per_hour"]) == Decimal("13.92")
    assert Decimal(prices["p6-b200.48xlarge", "Standard"]["price_per_hour"]) == Decimal("113.93")
    assert Decimal(prices["g6.xlarge", "Standard"]["price_per_gpu_hour"]) == Decimal("0.805")
    assert Decimal(prices["a3-highgpu-1g", "Standard"]["price_per_gpu_hour"]) == Decimal("10.98")
    assert Decimal(prices["a3-highgpu-1g", "Dynamic"]["price_per_gpu_hour"]) == Decimal("6.57")
    assert prices["a3-highgpu-1g", "Standard"]["effective_date"] == "2026-09-26"
    assert Decimal(prices["Standard_ND96isr_H100_v5", "Standard"]["price_per_hour"]) == Decimal("98")


def test_seed_reads_into_rows_and_an_arrow_table_without_losing_a_cent():
    rows = read_price_csv(PRICES_SEED)
    table = prices_to_table(rows)
    assert table.schema == PRICE_SCHEMA and table.num_rows == len(seed_rows())
    assert table.schema.field("price_per_hour").type == pa.decimal128(38, 10)
    by_key = {(r["instance_type"], r["pricing_category"]): r for r in table.to_pylist()}
    assert by_key["p5en.48xlarge", "Standard"]["price_per_gpu_hour"] == Decimal("7.9125")
    assert by_key["g6e.48xlarge", "Standard"]["price_per_gpu_hour"] == Decimal("3.766375")
    assert by_key["Standard_ND96isr_H100_v5", "Standard"]["region"] is None  # the source names none
    assert sum(r.price_per_hour for r in rows) == sum(Decimal(r["price_per_hour"]) for r in seed_rows())


# --- AWS Price List API ---------------------------------------------------------------------------

PUBLISHED = "2025-11-28T19:52:54Z"


def ec2_product(sku: str, instance_type: str, region: str, location: str, gpus: int, gpu_memory: str,
                on_demand: str, reserved: dict[str, tuple[str, str, str, str, str | None]]) -> dict:
    """One AmazonEC2 Price List entry as GetProducts returns it (decoded). Shapes, attribute names and
    offer term codes follow real entries; SKUs are made up and reserved figures other than p4d's 13.92
    are illustrative. reserved: offer code -> (lease, class, purchase option, hourly, upfront fee)."""
    def dimension(code: str, rate: str, unit: str, price: str, description: str) -> dict:
        return {"unit": unit, "endRange": "Inf", "description": description, "appliesTo": [],
                "rateCode": f"{sku}.{code}.{rate}", "beginRange": "0", "pricePerUnit": {"USD": price}}

    def reserved_term(code: str, lease: str, offering: str, option: str, hourly: str, upfront: str | None) -> dict:
        dims = {f"{sku}.{code}.6YS6EN2CT7": dimension(
            code, "6YS6EN2CT7", "Hrs", hourly, f"Linux/UNIX (Amazon VPC), {instance_type} reserved instance applied")}
        if upfront is not None:
            dims[f"{sku}.{code}.2TG2D8R56U"] = dimension(code, "2TG2D8R56U", "Quantity", upfront, "Upfront Fee")
        return {"priceDimensions": dims, "sku": sku, "effectiveDate": "2025-06-01T00:00:00Z", "offerTermCode": code,
                "termAttributes": {"LeaseContractLength": lease, "OfferingClass": offering, "PurchaseOption": option}}

    return {
        "product": {
            "productFamily": "Compute Instance",
            "attributes": {
                "enhancedNetworkingSupported": "Yes", "memory": "2048 GiB", "vcpu": "192", "gpu": str(gpus),
                "gpuMemory": gpu_memory, "capacitystatus": "Used", "locationType": "AWS Region",
                "instanceFamily": "GPU instance", "operatingSystem": "Linux", "regionCode": region,
                "servicename": "Amazon Elastic Compute Cloud", "instanceType": instance_type, "tenancy": "Shared",
                "usagetype": f"BoxUsage:{instance_type}", "servicecode": "AmazonEC2",
                "licenseModel": "No License required", "currentGeneration": "Yes", "preInstalledSw": "NA",
                "location": location, "processorArchitecture": "64-bit", "marketoption": "OnDemand",
                "operation": "RunInstances", "availabilityzone": "NA",
            },
            "sku": sku,
        },
        "serviceCode": "AmazonEC2",
        "terms": {
            "OnDemand": {f"{sku}.JRTCKXETXF": {
                "priceDimensions": {f"{sku}.JRTCKXETXF.6YS6EN2CT7": dimension(
                    "JRTCKXETXF", "6YS6EN2CT7", "Hrs", on_demand,
                    f"${Decimal(on_demand).normalize()} per On Demand Linux {instance_type} Instance Hour")},
                "sku": sku, "effectiveDate": "2025-11-01T00:00:00Z", "offerTermCode": "JRTCKXETXF",
                "termAttributes": {}}},
            "Reserved": {f"{sku}.{code}": reserved_term(code, *term) for code, term in reserved.items()},
        },
        "version": "20251128195254",
        "publicationDate": PUBLISHED,
    }


EC2_CATALOG = [
    ec2_product("XQ8D8ZQ4MTBU4W8V", "p5.48xlarge", "us-east-1", "US East (N. Virginia)", 8, "640 GB",
                "55.0400000000", {
                    # none of these is the 1-year No Upfront standard term, so p5 gets no Committed row
                    "6QCMYABX3D": ("1yr", "standard", "All Upfront", "0.0000000000", "301100"),
                    "7NE97W5U4E": ("1yr", "convertible", "No Upfront", "39.1000000000", None),
                    "BPH4J8HBKS": ("3yr", "standard", "No Upfront", "24.9000000000", None),
                }),
    ec2_product("KZ3H2T8W5CEU9X1P", "p5.48xlarge", "us-west-2", "US West (Oregon)", 8, "640 GB",
                "55.0400000000", {}),
    ec2_product("N8QDCUXGKA2MP5RG", "p4d.24xlarge", "us-east-1", "US East (N. Virginia)", 8, "320 GB",
                "21.9600000000", {
                    "4NA7Y494T4": ("1yr", "standard", "No Upfront", "13.9200000000", None),
                    "HU7G6KETJZ": ("1yr", "standard", "Partial Upfront", "6.3000000000", "55200"),
                }),
    ec2_product("B2ZQ9J3WQ8M7XUYA", "m7i.large", "us-east-1", "US East (N. Virginia)", 0, "NA",  # not a GPU
                "0.1008000000", {}),
]


def price_list_api(catalog: list[dict]) -> Answer:
    """GetProducts over AWS JSON 1.1, as api.pricing.us-east-1.amazonaws.com answers it: TERM_MATCH
    filters on product attributes, MaxResults per page, an opaque NextToken, entries as JSON strings."""
    def answer(request: Received) -> tuple[int, dict[str, str], bytes]:
        headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-RequestId": "0f6c1b2e-0000-4000-8000-1"}
        if request.headers.get("x-amz-target") != "AWSPriceListService.GetProducts":
            return 400, headers, json.dumps({"__type": "UnknownOperationException"}).encode()
        body = json.loads(request.body)
        matching = [p for p in catalog if p["serviceCode"] == body["ServiceCode"] and all(
            p["product"]["attributes"].get(f["Field"]) == f["Value"] for f in body.get("Filters", []))]
        start = int(body["NextToken"].removeprefix("page-after-")) if body.get("NextToken") else 0
        end = start + body.get("MaxResults", 100)
        out: dict = {"FormatVersion": "aws_v1", "PriceList": [json.dumps(p) for p in matching[start:end]]}
        if end < len(matching):
            out["NextToken"] = f"page-after-{end}"
        return 200, headers, json.dumps(out).encode()
    return answer


def aws_session() -> boto3.Session:
    return boto3.Session(aws_access_key_id="AKIDTESTING", aws_secret_access_key="testing-secret",
                         region_name="eu-west-1")


def aws_row(instance_type: str, region: str, gpu_model: str | None, category: str, price: str, per_gpu: str,
            day: date) -> GpuPrice:
    return GpuPrice("AWS", instance_type, region, gpu_model, 8, category, Decimal(price), "USD", Decimal(per_gpu),
                    day, AWS_SOURCE)


def test_aws_prices_come_from_get_products_with_the_expected_filters():
    with local_server(price_list_api(EC2_CATALOG)) as (url, received):
        rows = fetch_aws_prices(["p5.48xlarge", "p4d.24xlarge"], ["us-east-1"], session=aws_session(),
                                endpoint_url=url, gpu_models=read_gpu_models(SEEDS / "gpu_instance_types.csv"))
    assert rows == [
        aws_row("p4d.24xlarge", "us-east-1", "A100 40GB", "Standard", "21.96", "2.745", date(2025, 11, 1)),
        aws_row("p4d.24xlarge", "us-east-1", "A100 40GB", "Committed", "13.92", "1.74", date(2025, 6, 1)),
        aws_row("p5.48xlarge", "us-east-1", "H100 80GB", "Standard", "55.04", "6.88", date(2025, 11, 1)),
    ]
    assert len(received) == 2
    for request, instance_type in zip(received, ["p5.48xlarge", "p4d.24xlarge"], strict=True):
        assert (request.method, request.path) == ("POST", "/")
        assert request.headers["x-amz-target"] == "AWSPriceListService.GetProducts"
        assert request.headers["content-type"] == "application/x-amz-json-1.1"
        # SigV4-signed for the pricing service in the API's own region, whatever the session's region
        assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDTESTING/")
        assert "/us-east-1/pricing/aws4_request" in request.headers["authorization"]
        body = json.loads(request.body)
        assert body["ServiceCode"] == "AmazonEC2" and body["FormatVersion"] == "aws_v1"
        assert "NextToken" not in body
        assert sorted((f["Type"], f["Field"], f["Value"]) for f in body["Filters"]) == sorted([
            ("TERM_MATCH", "instanceType", instance_type), ("TERM_MATCH", "regionCode", "us-east-1"),
            ("TERM_MATCH", "operatingSystem", "Linux"), ("TERM_MATCH", "tenancy", "Shared"),
            ("TERM_MATCH", "preInstalledSw", "NA"), ("TERM_MATCH", "capacitystatus", "Used")])


def test_aws_prices_follow_next_token_across_pages():
    with local_server(price_list_api(EC2_CATALOG)) as (url, received):
        rows = fetch_aws_prices(["p5.48xlarge"], None, session=aws_session(), endpoint_url=url, page_size=1)
    bodies = [json.loads(r.body) for r in received]
    assert [b.get("NextToken") for b in bodies] == [None, "page-after-1"]
    assert [b["MaxResults"] for b in bodies] == [1, 1]
    assert all("regionCode" not in {f["Field"] for f in b["Filters"]} for b in bodies)  # every region
    assert [(r.region, r.pricing_category, r.price_per_hour, r.gpu_model) for r in rows] == [
        ("us-east-1", "Standard", Decimal("55.04"), None),  # no gpu_models given: the API names no GPU model
        ("us-west-2", "Standard", Decimal("55.04"), None),
    ]


def test_aws_refusal_is_one_clear_error():
    def access_denied(request: Received) -> tuple[int, dict[str, str], bytes]:
        return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps({
            "__type": "AccessDeniedException",
            "message": "User is not authorized to perform: pricing:GetProducts"}).encode()

    with local_server(access_denied) as (url, received), pytest.raises(PriceSourceError) as caught:
        fetch_aws_prices(["p5.48xlarge"], session=aws_session(), endpoint_url=url)
    assert "AccessDeniedException" in str(caught.value) and "pricing:GetProducts" in str(caught.value)
    assert caught.value.__suppress_context__  # no botocore traceback chained underneath
    assert len(received) == 1  # not retried


@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no instance-metadata lookup (and its timeout)


def test_aws_without_credentials_says_which_it_needs(no_aws_credentials, monkeypatch):
    with local_server(price_list_api(EC2_CATALOG)) as (url, received):
        with pytest.raises(MissingCredentialsError, match="AWS_ACCESS_KEY_ID") as caught:
            fetch_aws_prices(["p5.48xlarge"], endpoint_url=url)
        assert caught.value.__cause__ is None and not caught.value.__context__
        # half a key pair: botocore's PartialCredentialsError becomes the same message, and no secret shows
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "PLANTED-SECRET-9c1d")
        with pytest.raises(MissingCredentialsError) as caught:
            fetch_aws_prices(["p5.48xlarge"], endpoint_url=url)
        assert "PLANTED-SECRET-9c1d" not in str(caught.value)
    assert received == []


# --- GCP Cloud Billing Catalog API ------------------------------------------------------------------

def catalog_sku(sku_id: str, description: str, group: str, usage_type: str, regions: list[str],
                price: dict, family: str = "Compute", lower_tiers: tuple[dict, ...] = ()) -> dict:
    """One SKU of `GET /v1/services/6F81-5844-456A/skus` as the REST API returns it (proto3 JSON: int64
    units as a string, zero values left out). SKU ids are made up; prices are the fixture's own."""
    return {
        "name": f"services/6F81-5844-456A/skus/{sku_id}", "skuId": sku_id, "description": description,
        "category": {"serviceDisplayName": "Compute Engine", "resourceFamily": family, "resourceGroup": group,
                     "usageType": usage_type},
        "serviceRegions": regions,
        "pricingInfo": [{
            "summary": "",
            "pricingExpression": {
                "usageUnit": "h", "displayQuantity": 1, "usageUnitDescription": "hour", "baseUnit": "s",
                "baseUnitDescription": "second", "baseUnitConversionFactor": 3600,
                "tieredRates": [*lower_tiers, {"startUsageAmount": 744 if lower_tiers else 0,
                                               "unitPrice": {"currencyCode": "USD", **price}}],
            },
            "currencyConversionRate": 1,
            "effectiveTime": "2026-09-26T07:14:03.431Z",
        }],
        "serviceProviderName": "Google",
        "geoTaxonomy": {"type": "MULTI_REGIONAL", "regions": regions},
    }


CATALOG_PAGES = [
    [
        catalog_sku("0A1B-2C3D-4E5F", "Nvidia H100 80GB GPU running in Americas", "GPU", "OnDemand",
                    ["us-central1", "us-east4", "us-west1"], {"units": "10", "nanos": 980000000}),
        catalog_sku("1B2C-3D4E-5F60", "Spot Preemptible Nvidia H100 80GB GPU running in Americas", "GPU",
                    "Preemptible", ["us-central1"], {"units": "6", "nanos": 570000000}),
        catalog_sku("2C3D-4E5F-6071", "A3 Instance Core running in Americas", "CPU", "OnDemand",  # not a GPU
                    ["us-central1"], {"nanos": 31611000}),
        catalog_sku("3D4E-5F60-7182", "Commitment v1: Nvidia H100 80GB GPU in Americas for 3 Year", "GPU",
                    "Commit3Yr", ["us-central1"], {"units": "4", "nanos": 600000000}),  # only 1-year compared
    ],
    [
        catalog_sku("4E5F-6071-8293", "Commitment v1: Nvidia L4 GPU in Americas for 1 Year", "GPU", "Commit1Yr",
                    ["us-central1"], {"nanos": 352870000}),  # under a dollar: no "units" in the JSON
        catalog_sku("5F60-7182-93A4", "Nvidia Tesla T4 Virtual Workstation GPU running in Americas", "GPU",
                    "OnDemand", ["us-central1"], {"units": "1", "nanos": 350000000}),  # GPU + licence
        catalog_sku("6071-8293-A4B5", "Nvidia Tesla A100 GPU running in Americas", "GPU", "OnDemand",
                    ["us-central1"], {"units": "2", "nanos": 933908000},
                    # a free first tier pins the choice of the last tier as the price (GPU SKUs have one tier)
                    lower_tiers=({"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD"}},)),
    ],
]


def catalog_api(pages: list[list[dict]]) -> Answer:
    """list_skus over REST as cloudbilling.googleapis.com answers it, paged by nextPageToken."""
    def answer(request: Received) -> tuple[int, dict[str, str], bytes]:
        url = urlsplit(request.path)
        if (request.method, url.path) != ("GET", "/v1/services/6F81-5844-456A/skus"):
            return 404, {"Content-Type": "application/json"}, json.dumps(
                {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}).encode()
        token = parse_qs(url.query).get("pageToken", ["page-0"])[0]
        index = int(token.removeprefix("page-"))
        body = {"skus": pages[index], "nextPageToken": f"page-{index + 1}" if index + 1 < len(pages) else ""}
        return 200, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()
    return answer


def gcp_row(sku: str, region: str, gpu_model: str, category: str, price: str) -> GpuPrice:
    return GpuPrice("Google Cloud", sku, region, gpu_model, 1, category, Decimal(price), "USD", Decimal(price),
                    date(2026, 9, 26), GCP_SOURCE)


def test_gcp_prices_come_from_list_skus_across_pages():
    with local_server(catalog_api(CATALOG_PAGES)) as (url, received):
        rows = fetch_gcp_prices({"us-central1", "us-east4"}, credentials=AnonymousCredentials(), api_endpoint=url)
    assert rows == [
        gcp_row("0A1B-2C3D-4E5F", "us-central1", "H100 80GB", "Standard", "10.98"),
        gcp_row("0A1B-2C3D-4E5F", "us-east4", "H100 80GB", "Standard", "10.98"),
        gcp_row("1B2C-3D4E-5F60", "us-central1", "H100 80GB", "Dynamic", "6.57"),
        gcp_row("4E5F-6071-8293", "us-central1", "L4 24GB", "Committed", "0.35287"),
        gcp_row("6071-8293-A4B5", "us-central1", "A100 40GB", "Standard", "2.933908"),
    ]
    assert [urlsplit(r.path).path for r in received] == ["/v1/services/6F81-5844-456A/skus"] * 2
    queries = [parse_qs(urlsplit(r.path).query) for r in received]
    assert [q["currencyCode"] for q in queries] == [["USD"], ["USD"]]
    assert [q.get("pageToken") for q in queries] == [None, ["page-1"]]
    assert all("authorization" not in r.headers for r in received)  # anonymous


def test_gcp_api_key_travels_in_a_header_not_the_url():
    with local_server(catalog_api(CATALOG_PAGES[1:])) as (url, received):
        rows = fetch_gcp_prices(api_key="PLANTED-KEY-77aa", api_endpoint=url)
    assert {r.gpu_model for r in rows} == {"L4 24GB", "A100 40GB"}
    assert received[0].headers["x-goog-api-key"] == "PLANTED-KEY-77aa"
    assert "PLANTED-KEY-77aa" not in received[0].path


def test_gcp_refusal_is_one_clear_error():
    def denied(request: Received) -> tuple[int, dict[str, str], bytes]:
        return 403, {"Content-Type": "application/json"}, json.dumps({"error": {
            "code": 403, "status": "PERMISSION_DENIED",
            "message": "Cloud Billing API has not been used in project 123 before or it is disabled."}}).encode()

    with local_server(denied) as (url, _), pytest.raises(PriceSourceError, match="Cloud Billing API") as caught:
        fetch_gcp_prices(credentials=AnonymousCredentials(), api_endpoint=url)
    assert caught.value.__suppress_context__


def test_gcp_without_credentials_says_which_it_needs(monkeypatch, tmp_path):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    with (local_server(catalog_api(CATALOG_PAGES)) as (url, received),
          pytest.raises(MissingCredentialsError, match="GOOGLE_APPLICATION_CREDENTIALS") as caught):
        fetch_gcp_prices(api_endpoint=url)
    assert "Application Default Credentials" in str(caught.value) and "API key" in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert received == []


def test_money_and_gpu_names():
    assert money_to_decimal(10, 980_000_000) == Decimal("10.98")
    assert money_to_decimal(0, 352_870_000) == Decimal("0.35287")
    assert money_to_decimal(-1, -750_000_000) == Decimal("-1.75")
    assert gcp_gpu_model("Nvidia A100 80GB GPU running in EMEA") == "A100 80GB"
    assert gcp_gpu_model("Nvidia Tesla A100 GPU running in Americas") == "A100 40GB"
    assert gcp_gpu_model("Spot Preemptible Nvidia H200 141GB GPU running in Americas") == "H200 141GB"
    assert gcp_gpu_model("Nvidia GB200 GPU running in Americas") is None  # not a B200
    assert gcp_gpu_model("Nvidia Tesla P100 GPU running in Americas") is None
