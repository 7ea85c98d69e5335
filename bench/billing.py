"""Benchmark: a generated month of AWS CUR 2.0 ingested to the FOCUS model, against bare DuckDB.

    .venv/bin/python bench/billing.py [--lines 10000000] [--files 10] [--workdir DIR] [--keep] [--dbt build|run]

1. Generates one billing period (2026-11) of a CUR 2.0 export in AWS's layout (data Parquet files
   plus the period's Manifest.json) with a plausible mix of line items. Generation streams file by
   file with vectorised numpy/pyarrow and is timed on its own; it is not part of the measurement.
2. The reference: one bare DuckDB `read_parquet` over the same files that computes EffectiveCost
   with AWS's amortisation rules and sums it by day and service (the median of three runs, as it
   takes a fraction of a second).
3. The pipeline, into a fresh DuckDB file: `load_aws_cur` (raw ingestion), the config tables and
   the other sources' empty raw tables, then `dbt build --select +int_billing_charges`; then
   both again with nothing new, as a daily run finds the month once it is loaded.
4. Prints wall time, rows/s (on the generated input lines) and the ratio to the reference per
   stage, peak RSS of this process per stage and of the dbt child (wait4 on that child alone),
   the sizes of the DuckDB file and of the raw Parquet beside it, the slowest dbt nodes, and
   whether the pipeline's EffectiveCost agrees with the reference to the cent. Timing, dbt and
   the warehouse setup are bench/common.py's.

The reference runs before the pipeline so that its peak RSS is not inflated by memory the loader
leaves behind; both read the files from a warm page cache (generation has just written them).
Nothing here is a timed assertion: the numbers are only meaningful as ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from common import (
    DBT_PROJECT,
    GIB,
    Stage,
    add_workdir_options,
    dbt_node_line,
    gib,
    measure,
    own_peak,
    prepare_warehouse,
    run_dbt,
    sql_list,
    table,
    workdir,
)

from ingest.aws_cur_schema import CUR2_SCHEMA
from ingest.config import Config
from ingest.landing import LocalLanding
from ingest.load import load_aws_cur
from ingest.warehouse import connect

# ---------------------------------------------------------------------------------------------
# What the generated month looks like
# ---------------------------------------------------------------------------------------------

EXPORT = "bench-cur2"
BUCKET = "gpuledger-bench-billing"
PERIOD = "2026-11"
MONTH_START = datetime(2026, 11, 1)
MONTH_END = datetime(2026, 12, 1)
HOURS = 720
DAYS = 30
PAYER = ("123456789012", "Bench Payer")

KINDS = ("Usage", "SavingsPlanCoveredUsage", "SavingsPlanNegation", "DiscountedUsage", "Credit",
         "SavingsPlanRecurringFee", "RIFee", "Fee", "Tax")
USAGE, SP_COVERED, SP_NEGATION, DISCOUNTED, CREDIT, SP_FEE, RI_FEE, FEE, TAX = range(len(KINDS))
SP_SHARE = 0.16  # of instance-hours, covered by a Savings Plan (each also gets a negation line)
RI_SHARE = 0.12  # of instance-hours, covered by a reservation (DiscountedUsage)
CREDIT_SHARE = 0.003  # of other usage lines, mirrored by a promotional credit
SP_DISCOUNT = 0.28
RI_DISCOUNT = 0.35
SAVINGS_PLANS = 3
TAX_RATE = 0.06

# (code, usage type prefix, name, share of lines)
REGIONS = (
    ("us-east-1", "USE1", "US East (N. Virginia)", 0.45),
    ("us-west-2", "USW2", "US West (Oregon)", 0.25),
    ("eu-west-1", "EU", "EU (Ireland)", 0.12),
    ("eu-central-1", "EUC1", "EU (Frankfurt)", 0.08),
    ("ap-northeast-1", "APN1", "Asia Pacific (Tokyo)", 0.05),
    ("ap-southeast-2", "APS2", "Asia Pacific (Sydney)", 0.05),
)

# How a line's usage amount comes about: instance-style hours, a monthly quantity prorated over
# the line's hours (storage, metrics), or a per-line variable quantity (bytes, requests).
HOUR, MONTHLY, VARIABLE = range(3)


@dataclass(frozen=True)
class Service:
    product_code: str
    family: str
    usage_type: str
    operation: str
    unit: str
    rate: float  # USD per unit
    amount: int  # HOUR, MONTHLY or VARIABLE
    scale: float  # median quantity per resource (GB, requests per line, ...)
    hourly: bool  # hourly lines, else daily
    resource: str  # resource id shape (RESOURCE_PREFIXES), "" for none
    weight: float  # share of lines, relative
    description: str
    instance_type: str = ""
    instance_family: str = ""


SERVICES = (
    Service("AmazonEC2", "Storage", "EBS:VolumeUsage.gp3", "CreateVolume-Gp3", "GB-Mo", 0.08, MONTHLY, 500, True,
            "vol", 12, "$0.08 per GB-month of General Purpose (gp3) provisioned storage"),
    Service("AmazonEC2", "Storage", "EBS:VolumeUsage.gp2", "CreateVolume-Gp2", "GB-Mo", 0.10, MONTHLY, 200, True,
            "vol", 4, "$0.10 per GB-month of General Purpose SSD (gp2) provisioned storage"),
    Service("AmazonEC2", "Storage Snapshot", "EBS:SnapshotUsage", "CreateSnapshot", "GB-Mo", 0.05, MONTHLY, 300,
            False, "snap", 2, "$0.05 per GB-Month of snapshot data stored"),
    Service("AmazonEC2", "NAT Gateway", "NatGateway-Hours", "NatGateway", "Hrs", 0.045, HOUR, 1, True, "nat", 1,
            "$0.045 per NAT Gateway Hour"),
    Service("AmazonEC2", "NAT Gateway", "NatGateway-Bytes", "NatGateway", "GB", 0.045, VARIABLE, 5, True, "nat", 2,
            "$0.045 per GB Data Processed by NAT Gateways"),
    Service("AmazonEC2", "Data Transfer", "DataTransfer-Regional-Bytes", "InterZone-In", "GB", 0.01, VARIABLE, 2,
            True, "i", 5, "$0.010 per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs"),
    Service("AWSDataTransfer", "Data Transfer", "DataTransfer-Out-Bytes", "RunInstances", "GB", 0.09, VARIABLE, 3,
            True, "i", 6, "$0.090 per GB - first 10 TB / month data transfer out beyond the global free tier"),
    Service("AmazonS3", "Storage", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 0.023, MONTHLY, 2000, False,
            "bucket", 3, "$0.023 per GB - first 50 TB / month of storage used"),
    Service("AmazonS3", "API Request", "Requests-Tier1", "PutObject", "Requests", 0.000005, VARIABLE, 20000, True,
            "bucket", 4, "$0.005 per 1,000 PUT, COPY, POST, or LIST requests"),
    Service("AmazonS3", "API Request", "Requests-Tier2", "GetObject", "Requests", 0.0000004, VARIABLE, 200000, True,
            "bucket", 4, "$0.0004 per 1,000 GET and all other requests"),
    Service("AmazonRDS", "Database Instance", "InstanceUsage:db.r6g.xlarge", "CreateDBInstance:0016", "Hrs", 0.451,
            HOUR, 1, True, "rds", 2, "$0.451 per RDS db.r6g.xlarge instance hour (or partial hour) running PostgreSQL"),
    Service("AmazonRDS", "Database Storage", "RDS:GP3-Storage", "CreateDBInstance:0016", "GB-Mo", 0.115, MONTHLY, 500,
            True, "rds", 1, "$0.115 per GB-month of provisioned GP3 storage running PostgreSQL"),
    Service("AmazonDynamoDB", "Amazon DynamoDB PayPerRequest Throughput", "ReadRequestUnits",
            "PayPerRequestThroughput", "ReadRequestUnits", 0.000000125, VARIABLE, 1e6, True, "ddb", 2,
            "$0.125 per million read request units"),
    Service("AmazonDynamoDB", "Amazon DynamoDB PayPerRequest Throughput", "WriteRequestUnits",
            "PayPerRequestThroughput", "WriteRequestUnits", 0.000000625, VARIABLE, 2e5, True, "ddb", 2,
            "$0.625 per million write request units"),
    Service("AmazonDynamoDB", "Database Storage", "TimedStorage-ByteHrs", "StandardStorage", "GB-Mo", 0.25, MONTHLY,
            50, False, "ddb", 1, "$0.25 per GB-Month of storage used beyond first 25 free GB-Months"),
    Service("AWSLambda", "Serverless", "Lambda-GB-Second", "Invoke", "Lambda-GB-Second", 0.0000166667, VARIABLE,
            5000, True, "lambda", 5, "AWS Lambda - Total Compute - US East (N. Virginia)"),
    Service("AWSLambda", "Serverless", "Request", "Invoke", "Requests", 0.0000002, VARIABLE, 20000, True, "lambda",
            5, "AWS Lambda - Total Requests - US East (N. Virginia)"),
    Service("AmazonCloudWatch", "Metric", "CW:MetricMonitorUsage", "MetricStorage", "Metrics", 0.30, MONTHLY, 50,
            True, "", 2, "$0.30 per metric-month - first 10,000 metrics"),
    Service("AmazonCloudWatch", "Data Payload", "DataProcessing-Bytes", "PutLogEvents", "GB", 0.50, VARIABLE, 1, True,
            "loggroup", 3, "$0.50 per GB custom log data ingested"),
    Service("AmazonCloudWatch", "Storage Snapshot", "TimedStorage-ByteHrs", "HourlyStorageMetering", "GB-Mo", 0.03,
            MONTHLY, 100, False, "loggroup", 1, "$0.03 per GB-mo of log storage"),
    Service("AmazonEKS", "Compute", "AmazonEKS-Hours:perCluster", "CreateOperation", "Hrs", 0.10, HOUR, 1, True,
            "eks", 0.5, "Amazon EKS cluster usage"),
    Service("AmazonECS", "Compute", "Fargate-vCPU-Hours:perCPU", "FargateTask", "hours", 0.04048, VARIABLE, 2, True,
            "ecs", 2, "AWS Fargate - vCPU - US East (N. Virginia)"),
    Service("AmazonECS", "Compute", "Fargate-GB-Hours", "FargateTask", "hours", 0.004445, VARIABLE, 4, True, "ecs", 2,
            "AWS Fargate - Memory - US East (N. Virginia)"),
    Service("AmazonSageMaker", "ML Instance", "Hosting:ml.g5.2xlarge", "RunInstance", "Hrs", 1.515, HOUR, 1, True,
            "sm", 0.5, "$1.515 per Hosting ml.g5.2xlarge hour"),
    Service("AmazonSageMaker", "ML Instance", "Notebk:ml.t3.medium", "RunInstance:0003", "Hrs", 0.05, HOUR, 1, True,
            "sm", 0.5, "$0.05 per Notebook ml.t3.medium hour"),
    Service("AmazonBedrock", "Amazon Bedrock", "Claude3.5Sonnet-input-tokens", "InvokeModelInference", "1K tokens",
            0.003, VARIABLE, 500, True, "", 1, "Claude 3.5 Sonnet input tokens"),
    Service("AmazonBedrock", "Amazon Bedrock", "Claude3.5Sonnet-output-tokens", "InvokeModelInference", "1K tokens",
            0.015, VARIABLE, 100, True, "", 1, "Claude 3.5 Sonnet output tokens"),
    Service("AmazonCloudFront", "Data Transfer", "DataTransfer-Out-Bytes", "GET", "GB", 0.085, VARIABLE, 10, True,
            "cf", 2, "$0.085 per GB - first 10 TB / month data transfer out"),
    Service("AWSELB", "Load Balancer-Application", "LoadBalancerUsage", "LoadBalancing:Application", "Hrs", 0.0225,
            HOUR, 1, True, "alb", 1, "$0.0225 per Application LoadBalancer-hour (or partial hour)"),
    Service("AWSELB", "Load Balancer-Application", "LCUUsage", "LoadBalancing:Application", "LCU-Hrs", 0.008,
            VARIABLE, 3, True, "alb", 1, "$0.008 per used Application load balancer capacity unit-hour"),
    Service("AmazonVPC", "VpcEndpoint", "VpcEndpoint-Hours", "VpcEndpoint", "Hrs", 0.01, HOUR, 1, True, "vpce", 1,
            "$0.01 per VPC Endpoint Hour"),
    Service("AmazonVPC", "IP Address", "PublicIPv4:InUseAddress", "AssociateAddressVPC", "Hrs", 0.005, HOUR, 1, True,
            "eip", 2, "$0.005 per In-use public IPv4 address per hour"),
    Service("AmazonElastiCache", "Cache Instance", "NodeUsage:cache.r6g.large", "CreateCacheCluster:0000",
            "NodeHours", 0.206, HOUR, 1, True, "cache", 1, "$0.206 per Cache.r6g.large Node Hour running Redis"),
    Service("AmazonEFS", "Storage", "TimedStorage-ByteHrs", "", "GB-Mo", 0.30, MONTHLY, 200, False, "efs", 1,
            "$0.30 per GB-Mo for Standard storage"),
    Service("AmazonRoute53", "DNS Query", "DNS-Queries", "Queries", "Queries", 0.0000004, VARIABLE, 1e5, True, "zone",
            1, "$0.40 per 1,000,000 queries for the first 1 Billion queries"),
    Service("AmazonECR", "Storage", "TimedStorage-ByteHrs", "", "GB-Mo", 0.10, MONTHLY, 300, False, "ecr", 1,
            "$0.10 per GB-month of data storage"),
    Service("AWSConfig", "Management Tools - AWS Config", "ConfigurationItemRecorded", "", "ConfigurationItemRecorded",
            0.003, VARIABLE, 50, True, "", 1, "$0.003 per Configuration Item recorded"),
    Service("AWSCloudTrail", "Management Tools - AWS CloudTrail", "PaidEventsRecorded", "", "Events", 0.00001,
            VARIABLE, 10000, True, "trail", 0.5, "$0.00001 per paid event recorded"),
    Service("awskms", "Encryption Key", "KMS-Requests", "", "Requests", 0.000003, VARIABLE, 10000, True, "kms", 1,
            "$0.03 per 10,000 requests"),
    Service("AmazonSQS", "API Request", "Requests-RBP", "", "Requests", 0.0000004, VARIABLE, 1e5, True, "sqs", 1,
            "$0.40 per 1,000,000 Amazon SQS Requests"),
    Service("AmazonSNS", "API Request", "Requests-Tier1", "", "Requests", 0.0000005, VARIABLE, 1e4, True, "sns", 0.5,
            "First 1,000,000 Amazon SNS API Requests per month are free"),
)

# Non-GPU instance families (none that the unknown-GPU-type dbt test would flag) and their
# on-demand USD/hour; then the share of all lines that are EC2 instance-hours.
CPU_INSTANCES = {
    "m5.large": 0.096, "m5.xlarge": 0.192, "m5.2xlarge": 0.384, "m6i.large": 0.096, "m6i.4xlarge": 0.768,
    "m7g.xlarge": 0.1632, "c5.xlarge": 0.17, "c6i.2xlarge": 0.34, "c7g.4xlarge": 0.58, "r5.xlarge": 0.252,
    "r6i.2xlarge": 0.504, "t3.medium": 0.0416, "t3.large": 0.0832, "t4g.small": 0.0168, "i3.2xlarge": 0.624,
    "x2idn.16xlarge": 6.669,
}
CPU_INSTANCE_WEIGHT = 32.0
GPU_INSTANCE_WEIGHT = 3.0  # a small share of lines, spread over every AWS type in the seed
# On-demand USD per GPU-hour by GPU model (cloud_gpu_prices seed where it has one, else public list prices).
GPU_HOUR_RATE = {
    "H100 80GB": 6.88, "H200 141GB": 7.9125, "A100 40GB": 2.745, "A100 80GB": 3.43125, "B200 180GB": 14.24125,
    "A10G 24GB": 1.006, "L4 24GB": 0.805, "L40S 48GB": 1.861, "V100 16GB": 3.06, "V100 32GB": 3.90,
    "T4 16GB": 0.526, "M60 8GB": 0.75, "K80 12GB": 0.90, "Radeon Pro V520 8GB": 0.379,
}
SIZE_FACTOR = {"small": 1, "medium": 2, "large": 4, "xlarge": 8, "2xlarge": 16, "4xlarge": 32, "8xlarge": 64,
               "12xlarge": 96, "16xlarge": 128, "24xlarge": 192, "48xlarge": 384, "metal": 192}

RESOURCE_PREFIXES = {
    "i": "i-", "vol": "vol-", "snap": "snap-", "nat": "nat-", "eip": "eipalloc-", "vpce": "vpce-",
    "bucket": "{account_name}-data-", "rds": "arn:aws:rds:{region}:{account}:db:pg-",
    "ddb": "arn:aws:dynamodb:{region}:{account}:table/t-",
    "lambda": "arn:aws:lambda:{region}:{account}:function:fn-",
    "loggroup": "arn:aws:logs:{region}:{account}:log-group:/aws/app-",
    "eks": "arn:aws:eks:{region}:{account}:cluster/k-", "ecs": "arn:aws:ecs:{region}:{account}:task/t-",
    "sm": "arn:aws:sagemaker:{region}:{account}:endpoint/ep-",
    "cf": "arn:aws:cloudfront::{account}:distribution/e",
    "alb": "arn:aws:elasticloadbalancing:{region}:{account}:loadbalancer/app/lb-",
    "cache": "arn:aws:elasticache:{region}:{account}:cluster:c-",
    "efs": "arn:aws:elasticfilesystem:{region}:{account}:file-system/fs-",
    "zone": "arn:aws:route53:::hostedzone/z", "ecr": "arn:aws:ecr:{region}:{account}:repository/r-",
    "trail": "arn:aws:cloudtrail:{region}:{account}:trail/t-", "kms": "arn:aws:kms:{region}:{account}:key/",
    "sqs": "arn:aws:sqs:{region}:{account}:q-", "sns": "arn:aws:sns:{region}:{account}:n-",
}
ZONAL = {"i", "vol", "nat", "rds", "cache"}

TEAMS = ("ml-research", "inference", "platform", "data-eng", "search", "ads", "growth", "payments", "mobile",
         "security", "analytics", "infra")
ENVS = ("prod", "staging", "dev")
PROJECTS = tuple(f"project-{i:02d}" for i in range(40))
COST_CENTERS = tuple(f"cc-{i}" for i in range(1000, 1020))
# (tag key as CUR 2.0 spells it, values, share of resources carrying it)
TAGS = (("user_team", TEAMS, 0.6), ("user_env", ENVS, 0.8), ("user_project", PROJECTS, 0.4),
        ("user_cost_center", COST_CENTERS, 0.3))
ACCOUNTS = 24

LOWER32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
UPPER36 = np.frombuffer(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", np.uint8)


def random_strings(rng: np.random.Generator, n: int, width: int, alphabet: np.ndarray) -> pa.StringArray:
    """n random fixed-width strings, built straight into an Arrow buffer (no Python string per row)."""
    data = alphabet[rng.integers(0, len(alphabet), n * width)]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data))


def take(values: list[str | None] | pa.Array, indices: np.ndarray) -> pa.Array:
    """values[indices] as an Arrow array; a negative index gives null."""
    values = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
    return pc.take(values, pa.array(indices, mask=indices < 0))


def doubles(values: np.ndarray) -> pa.Array:
    """Money and quantities as doubles, as CUR 2.0 writes them; NaN marks a column AWS leaves empty."""
    return pa.array(values, pa.float64(), from_pandas=True)


def string_maps(rng: np.random.Generator, n: int, specs: tuple[tuple[str, tuple[str, ...], float], ...],
                ) -> pa.MapArray:
    """n string maps, where key k is present with probability p_k and takes a uniform value."""
    present = np.stack([rng.random(n) < p for _, _, p in specs], axis=1)
    values = np.stack([rng.integers(0, len(v), n) for _, v, _ in specs], axis=1)
    vocabulary = [v for _, vs, _ in specs for v in vs]
    base = np.cumsum([0] + [len(vs) for _, vs, _ in specs])[:-1]
    offsets = np.concatenate([[0], np.cumsum(present.sum(axis=1))]).astype(np.int32)
    keys = take([k for k, _, _ in specs], np.broadcast_to(np.arange(len(specs)), present.shape)[present])
    items = take(vocabulary, (values + base)[present])
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items)


# ---------------------------------------------------------------------------------------------
# The catalogue (usage types per region), the resource pool, and the lines of one file
# ---------------------------------------------------------------------------------------------


def gpu_services() -> list[Service]:
    seed = pacsv.read_csv(DBT_PROJECT / "seeds" / "gpu_instance_types.csv").to_pylist()
    aws = [r for r in seed if r["provider"] == "AWS"]
    return [instance_service(r["instance_type"], GPU_HOUR_RATE[r["gpu_model"]] * r["gpu_count"],
                             GPU_INSTANCE_WEIGHT / len(aws), "GPU instance") for r in aws]


def instance_service(name: str, rate: float, weight: float, family: str) -> Service:
    return Service("AmazonEC2", "Compute Instance", f"BoxUsage:{name}", "RunInstances", "Hrs", rate, HOUR, 1, True,
                   "i", weight, f"${rate:.4f} per On Demand Linux {name} Instance Hour", name, family)


@dataclass
class Catalogue:
    """One offer per (service, region): the usage types a line can have, as parallel arrays."""

    services: list[Service]
    region: np.ndarray  # offer -> REGIONS index
    service: np.ndarray  # offer -> services index
    weight: np.ndarray  # share of lines
    strings: dict[str, pa.Array] = field(default_factory=dict)  # per-offer string columns
    _columns: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(cls, rng: np.random.Generator) -> Catalogue:
        services = [*SERVICES, *(instance_service(n, r, CPU_INSTANCE_WEIGHT / len(CPU_INSTANCES), "General purpose")
                                 for n, r in CPU_INSTANCES.items()), *gpu_services()]
        service, region = (a.ravel() for a in np.meshgrid(np.arange(len(services)), np.arange(len(REGIONS)),
                                                           indexing="ij"))
        weight = np.array([services[s].weight * REGIONS[r][3] for s, r in zip(service, region, strict=True)])
        cat = cls(services, region, service, weight / weight.sum())
        cat.strings = cat._strings(rng)
        return cat

    def _strings(self, rng: np.random.Generator) -> dict[str, pa.Array]:
        offers = [(self.services[s], REGIONS[r]) for s, r in zip(self.service, self.region, strict=True)]
        skus = random_strings(rng, len(offers), 16, UPPER36).to_pylist()
        return {
            "usage_type": pa.array([f"{reg[1]}-{s.usage_type}" for s, reg in offers]),
            "description": pa.array([s.description for s, _ in offers]),
            "sku": pa.array(skus),
            "rate_code": pa.array([f"{sku}.JRTCKXETXF.6YS6EN2CT7" for sku in skus]),
            "rate_id": pa.array([str(int(x)) for x in rng.integers(10**9, 10**10, len(offers))]),
        }

    def column(self, attribute: str) -> np.ndarray:
        """A Service attribute per offer (computed once: it is indexed by every line of every file)."""
        if attribute not in self._columns:
            self._columns[attribute] = np.array([getattr(self.services[s], attribute) for s in self.service])
        return self._columns[attribute]

    def lookup(self, attribute: str) -> pa.Array:
        """A string Service attribute per offer, as an Arrow array to take lines' values from."""
        key = f"arrow:{attribute}"
        if key not in self.strings:
            self.strings[key] = pa.array([str(getattr(self.services[s], attribute)) for s in self.service])
        return self.strings[key]

    @cached_property
    def size_factor(self) -> np.ndarray:
        """AWS's normalization factor per offer (instance size), NaN for what is not an instance."""
        return np.array([SIZE_FACTOR.get(t.rpartition(".")[2], np.nan) if t else np.nan
                         for t in self.column("instance_type")])

    @cached_property
    def descriptions(self) -> pa.Array:
        """Line descriptions: per offer for usage, covered usage and reserved usage, then the
        negation's and the credit's; `description_index` picks one per line."""
        types = self.column("instance_type")
        return pa.concat_arrays([
            self.strings["description"],
            pa.array([f"{t} covered by Savings Plan" for t in types]),
            pa.array([f"USD 0.0 hourly fee per Linux/UNIX, {t} reserved instance applied" for t in types]),
            pa.array(["SavingsPlanNegation used by AccountId and UsageSku", "AWS Activate credits"]),
        ])

    def description_index(self, offer: np.ndarray, kind: np.ndarray) -> np.ndarray:
        n = len(self.service)
        return np.select([kind == SP_COVERED, kind == DISCOUNTED, kind == SP_NEGATION, kind == CREDIT],
                         [offer + n, offer + 2 * n, 3 * n, 3 * n + 1], offer)

    @cached_property
    def product_map(self) -> pa.MapArray:
        """CUR 2.0's `product` map per offer (product attributes without a column of their own)."""
        names = {code: code.replace("Amazon", "Amazon ").replace("AWS", "AWS ")
                 for code in self.column("product_code").tolist()}
        values = [v for code, r in zip(self.column("product_code").tolist(), self.region.tolist(), strict=True)
                  for v in (names[code], REGIONS[r][0])]
        return pa.MapArray.from_arrays(pa.array(np.arange(0, len(values) + 1, 2, dtype=np.int32)),
                                       pa.array(["product_name", "region"] * len(self.region)), pa.array(values))


@dataclass
class Pool:
    """The month's resources: each belongs to one offer and account, and keeps its tags and id."""

    offer: np.ndarray
    account: np.ndarray
    scale: np.ndarray  # quantity per line before noise (GB for storage, requests, ...)
    cumulative: np.ndarray  # for drawing a resource per line, weighted by how many lines it has
    resource_id: pa.Array
    availability_zone: pa.Array
    tags: pa.MapArray

    @classmethod
    def build(cls, cat: Catalogue, rng: np.random.Generator, size: int) -> Pool:
        hourly = cat.column("hourly")
        lines_per_resource = np.where(hourly, HOURS, DAYS)
        # Resources per offer in proportion to its line share over the lines one resource makes,
        # so daily offers (storage) have many more resources per line than hourly ones.
        p = cat.weight / lines_per_resource
        offer = rng.choice(len(p), size, p=p / p.sum())
        share = 1.0 / np.arange(1, ACCOUNTS + 1)  # a few big accounts, a long tail
        account = rng.choice(ACCOUNTS, size, p=share / share.sum())
        median = cat.column("scale")[offer]
        scale = median * rng.lognormal(0.0, 0.8, size)
        lines = lines_per_resource[offer] * rng.lognormal(0.0, 0.5, size)
        cumulative = np.cumsum(lines)
        return cls(offer, account, scale, cumulative / cumulative[-1], cls._ids(cat, rng, offer, account),
                   cls._zones(cat, rng, offer), string_maps(rng, size, TAGS))

    @staticmethod
    def _ids(cat: Catalogue, rng: np.random.Generator, offer: np.ndarray, account: np.ndarray) -> pa.Array:
        kinds = sorted(RESOURCE_PREFIXES)
        kind = np.array([kinds.index(k) if k else -1 for k in cat.column("resource")])[offer]
        region = cat.region[offer]
        # One prefix per (shape, region, account) that occurs, formatted once.
        key = (kind * len(REGIONS) + region) * ACCOUNTS + account
        unique, inverse = np.unique(key, return_inverse=True)
        prefixes = []
        for k in unique.tolist():
            shape, rest = divmod(k, len(REGIONS) * ACCOUNTS)
            reg, acct = divmod(rest, ACCOUNTS)
            prefixes.append("" if shape < 0 else RESOURCE_PREFIXES[kinds[shape]].format(
                region=REGIONS[reg][0], account=account_id(acct), account_name=account_name(acct)))
        suffix = random_strings(rng, len(offer), 17, HEX)
        ids = pc.binary_join_element_wise(take(prefixes, inverse), suffix, "")
        return pc.if_else(pa.array(kind < 0), "", ids)

    @staticmethod
    def _zones(cat: Catalogue, rng: np.random.Generator, offer: np.ndarray) -> pa.Array:
        zonal = np.isin(cat.column("resource"), list(ZONAL))[offer]
        zones = [f"{r[0]}{z}" for r in REGIONS for z in "abc"]
        index = cat.region[offer] * 3 + rng.integers(0, 3, len(offer))
        return pc.if_else(pa.array(zonal), take(zones, index), "")

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cumulative, rng.random(n)), len(self.offer) - 1)


def account_id(i: int) -> str:
    return f"{210000000000 + 7919 * i:012d}"


def account_name(i: int) -> str:
    return f"acme-{TEAMS[i % len(TEAMS)]}-{ENVS[i % len(ENVS)]}"


@dataclass
class Month:
    """What is the same for every file of the export, and the running totals the closing lines need."""

    cat: Catalogue
    pool: Pool
    sp_arns: list[str]
    ri_arns: pa.Array  # one reservation per instance offer
    slot_start: np.ndarray  # ms; slots: 720 hours, then 30 days, then the whole month
    slot_end: np.ndarray
    slot_interval: pa.Array
    billed: np.ndarray  # (account, offer) -> billed cost so far, for the month's tax lines
    kinds: np.ndarray = field(default_factory=lambda: np.zeros(len(KINDS), np.int64))

    @classmethod
    def build(cls, rng: np.random.Generator, lines: int) -> Month:
        cat = Catalogue.build(rng)
        pool = Pool.build(cat, rng, max(2_000, lines // 50))
        starts = ([MONTH_START + timedelta(hours=h) for h in range(HOURS)]
                  + [MONTH_START + timedelta(days=d) for d in range(DAYS)] + [MONTH_START])
        ends = ([s + timedelta(hours=1) for s in starts[:HOURS]]
                + [s + timedelta(days=1) for s in starts[HOURS:-1]] + [MONTH_END])
        ms = np.array([int((s - datetime(1970, 1, 1)).total_seconds() * 1000) for s in starts + ends], np.int64)
        interval = pa.array([f"{s:%Y-%m-%dT%H:%M:%SZ}/{e:%Y-%m-%dT%H:%M:%SZ}" for s, e in zip(starts, ends,
                                                                                            strict=True)])
        sp_arns = [f"arn:aws:savingsplans::{PAYER[0]}:savingsplan/{u}"
                   for u in random_strings(rng, SAVINGS_PLANS, 32, HEX).to_pylist()]
        ri_arns = pc.binary_join_element_wise(
            take([f"arn:aws:ec2:{r[0]}:{PAYER[0]}:reserved-instances/" for r in REGIONS], cat.region),
            random_strings(rng, len(cat.region), 32, HEX), "")
        return cls(cat, pool, sp_arns, ri_arns, ms[: len(starts)], ms[len(starts):], interval,
                   np.zeros((ACCOUNTS, len(cat.region))))


def usage_lines(month: Month, rng: np.random.Generator, n: int) -> dict[str, pa.Array]:
    """n usage-driven lines: Usage, Savings Plan covered usage each followed by its negation,
    reservation-covered usage, and promotional credits mirroring a usage line."""
    cat, pool = month.cat, month.pool
    # Draw "events" first; an SP-covered event becomes two lines, so n events make at least n lines.
    ev_resource = pool.draw(rng, n)
    ev_offer = pool.offer[ev_resource]
    instance = (cat.column("instance_type") != "")[ev_offer]
    u = rng.random(n)
    ev_kind = np.full(n, USAGE, np.int8)
    ev_kind[instance & (u < SP_SHARE)] = SP_COVERED
    ev_kind[instance & (u >= SP_SHARE) & (u < SP_SHARE + RI_SHARE)] = DISCOUNTED
    ev_kind[~instance & (u < CREDIT_SHARE)] = CREDIT
    hourly = cat.column("hourly")[ev_offer]
    ev_slot = np.where(hourly, rng.integers(0, HOURS, n), HOURS + rng.integers(0, DAYS, n))
    ev_noise = rng.lognormal(0.0, 0.7, n)
    ev_plan = rng.integers(0, SAVINGS_PLANS, n)

    event = np.repeat(np.arange(n), np.where(ev_kind == SP_COVERED, 2, 1))[:n]
    negation = np.zeros(n, bool)
    negation[1:] = event[1:] == event[:-1]
    r, offer, slot = ev_resource[event], ev_offer[event], ev_slot[event]
    kind = ev_kind[event]
    kind[negation] = SP_NEGATION

    amount_kind = cat.column("amount")[offer]
    hours = np.where(slot < HOURS, 1.0, 24.0)
    scale = pool.scale[r]
    quantity = np.select([amount_kind == HOUR, amount_kind == MONTHLY], [hours, scale * hours / HOURS],
                         np.where(cat.column("unit")[offer] == "GB", scale * ev_noise[event],
                                  np.ceil(scale * ev_noise[event])))
    quantity = np.round(quantity, 8)
    rate = cat.column("rate")[offer]
    on_demand = np.round(quantity * rate, 10)
    usage_like = np.isin(kind, [USAGE, SP_COVERED, DISCOUNTED])
    unblended = np.select([kind == SP_NEGATION, kind == DISCOUNTED, kind == CREDIT], [-on_demand, 0.0, -on_demand],
                          on_demand)
    factor = np.where(kind != CREDIT, cat.size_factor[offer], np.nan)

    month.kinds += np.bincount(kind, minlength=len(KINDS))
    month.billed += np.bincount(pool.account[r] * len(cat.region) + offer, np.where(kind == CREDIT, 0.0, unblended),
                                minlength=month.billed.size).reshape(month.billed.shape)

    sp = np.where(np.isin(kind, [SP_COVERED, SP_NEGATION]), ev_plan[event], -1)
    ri = np.where(kind == DISCOUNTED, offer, -1)
    return {
        "identity_line_item_id": random_strings(rng, n, 52, LOWER32),
        "identity_time_interval": take(month.slot_interval, slot),
        "line_item_line_item_type": take(list(KINDS), kind),
        "line_item_line_item_description": pc.take(cat.descriptions, cat.description_index(offer, kind)),
        "line_item_usage_start_date": pa.array(month.slot_start[slot], pa.timestamp("ms")),
        "line_item_usage_end_date": pa.array(month.slot_end[slot], pa.timestamp("ms")),
        "line_item_usage_account_id": take([account_id(i) for i in range(ACCOUNTS)], pool.account[r]),
        "line_item_usage_account_name": take([account_name(i) for i in range(ACCOUNTS)], pool.account[r]),
        "line_item_resource_id": pc.take(pool.resource_id, r),
        "line_item_availability_zone": pc.take(pool.availability_zone, r),
        "resource_tags": pc.take(pool.tags, r),
        **offer_columns(cat, offer),
        "line_item_usage_amount": doubles(np.where(kind == CREDIT, np.nan, quantity)),
        "line_item_unblended_cost": doubles(unblended),
        "line_item_blended_cost": doubles(unblended),
        "line_item_unblended_rate": doubles(np.select([np.isin(kind, [USAGE, SP_COVERED]), kind == DISCOUNTED],
                                                      [rate, 0.0], np.nan)),
        "line_item_blended_rate": doubles(np.where(usage_like, rate, np.nan)),
        "line_item_normalization_factor": doubles(factor),
        "line_item_normalized_usage_amount": doubles(quantity * factor),
        "pricing_public_on_demand_cost": doubles(np.select([usage_like, kind == SP_NEGATION], [on_demand, 0.0],
                                                           np.nan)),
        "pricing_public_on_demand_rate": doubles(np.where(usage_like, rate, np.nan)),
        "pricing_term": take(["OnDemand", "OnDemand", "OnDemand", "Reserved", None], kind),
        "pricing_purchase_option": take(["On Demand", None, None, "No Upfront", None], kind),
        "pricing_lease_contract_length": take([None, None, None, "1yr", None], kind),
        "pricing_offering_class": take([None, None, None, "standard", None], kind),
        "savings_plan_savings_plan_a_r_n": take(month.sp_arns, sp),
        "savings_plan_offering_type": take([None, "ComputeSavingsPlans", "ComputeSavingsPlans", None, None], kind),
        "savings_plan_payment_option": take([None, "No Upfront", "No Upfront", None, None], kind),
        "savings_plan_purchase_term": take([None, "1yr", "1yr", None, None], kind),
        "savings_plan_savings_plan_effective_cost": doubles(
            np.where(kind == SP_COVERED, np.round(on_demand * (1 - SP_DISCOUNT), 10), np.nan)),
        "savings_plan_savings_plan_rate": doubles(np.where(kind == SP_COVERED, rate * (1 - SP_DISCOUNT), np.nan)),
        "reservation_reservation_a_r_n": take(month.ri_arns, ri),
        "reservation_effective_cost": doubles(
            np.where(kind == DISCOUNTED, np.round(on_demand * (1 - RI_DISCOUNT), 10), np.nan)),
        "reservation_recurring_fee_for_usage": doubles(
            np.where(kind == DISCOUNTED, np.round(on_demand * (1 - RI_DISCOUNT), 10), np.nan)),
        "reservation_amortized_upfront_cost_for_usage": doubles(np.where(kind == DISCOUNTED, 0.0, np.nan)),
    }


def offer_columns(cat: Catalogue, offer: np.ndarray) -> dict[str, pa.Array]:
    """The product and pricing columns a line inherits from its usage type."""
    regions = cat.region
    transfer = cat.column("family") == "Data Transfer"
    instance_type = cat.lookup("instance_type")
    return {
        "line_item_product_code": pc.take(cat.lookup("product_code"), offer),
        "line_item_usage_type": pc.take(cat.strings["usage_type"], offer),
        "line_item_operation": pc.take(cat.lookup("operation"), offer),
        "pricing_unit": pc.take(cat.lookup("unit"), offer),
        "pricing_rate_code": pc.take(cat.strings["rate_code"], offer),
        "pricing_rate_id": pc.take(cat.strings["rate_id"], offer),
        "product_sku": pc.take(cat.strings["sku"], offer),
        "product_servicecode": pc.take(cat.lookup("product_code"), offer),
        "product_product_family": pc.take(cat.lookup("family"), offer),
        "product_usagetype": pc.take(cat.strings["usage_type"], offer),
        "product_operation": pc.take(cat.lookup("operation"), offer),
        "product_pricing_unit": pc.take(cat.lookup("unit"), offer),
        "product_region_code": take([r[0] for r in REGIONS], regions[offer]),
        "product_location": take([r[2] for r in REGIONS], regions[offer]),
        "product_location_type": take(["AWS Region"], np.zeros(len(offer), np.int64)),
        "product_instance_type": pc.take(pc.if_else(pc.equal(instance_type, ""), None, instance_type), offer),
        "product_instance_family": pc.take(pc.if_else(pc.equal(instance_type, ""), None,
                                                      cat.lookup("instance_family")), offer),
        "product_from_location": take([r[2] for r in REGIONS], np.where(transfer[offer], regions[offer], -1)),
        "product_to_location": take(["External"], np.where(transfer[offer], 0, -1)),
        "product": pc.take(cat.product_map, offer),
    }


def closing_block(kind: int, slot: np.ndarray, product: list[str], usage_type: list[str], description: list[str],
                  cost: np.ndarray, **extra: np.ndarray) -> dict[str, np.ndarray | list[str]]:
    """One kind of month-end line, as parallel per-line values (account 0 unless given)."""
    n = len(slot)
    return {"kind": np.full(n, kind), "slot": slot, "product": product, "usage_type": usage_type,
            "description": description, "cost": cost, "account": np.zeros(n, np.int64), **extra}


def closing_lines(month: Month, rng: np.random.Generator) -> dict[str, pa.Array]:
    """What AWS adds for the whole month: hourly Savings Plan fees, RI fees with their unused part,
    upfront and support fees, and sales tax per account and service on what was billed."""
    cat = month.cat
    whole_month = HOURS + DAYS  # the slot spanning the month
    # Savings Plans: one recurring fee per plan and hour, partly unused.
    plan, hour = (a.ravel() for a in np.meshgrid(np.arange(SAVINGS_PLANS), np.arange(HOURS), indexing="ij"))
    commitment = np.array([40.0, 25.0, 12.5])[plan]
    used = np.round(commitment * rng.uniform(0.85, 1.0, len(plan)), 10)
    sp_fees = closing_block(SP_FEE, hour, ["ComputeSavingsPlans"] * len(plan),
                            ["ComputeSP:1yrNoUpfront"] * len(plan),
                            ["1 year No Upfront Compute Savings Plan"] * len(plan), commitment,
                            sp=plan, sp_total=commitment, sp_used=used)
    # Reservations: a monthly fee per instance offer, with an unused part.
    ri = np.flatnonzero(cat.column("instance_type") != "")
    fee = np.round(cat.column("rate")[ri] * (1 - RI_DISCOUNT) * HOURS * rng.integers(1, 4, len(ri)), 2)
    ri_fees = closing_block(
        RI_FEE, np.full(len(ri), whole_month), ["AmazonEC2"] * len(ri),
        [f"{REGIONS[r][1]}-HeavyUsage:{t}" for r, t in zip(cat.region[ri], cat.column("instance_type")[ri],
                                                            strict=True)],
        [f"USD {f:.2f} monthly fee per reserved instance" for f in fee], fee,
        ri=ri, ri_unused=np.round(fee * rng.uniform(0.0, 0.2, len(ri)), 2))
    # Fees: all-upfront reservation purchases (amortised into usage, so no effective cost) and support.
    fees = closing_block(FEE, np.full(6, whole_month), ["AmazonEC2"] * 5 + ["AWSSupportBusiness"], [""] * 6,
                         ["Upfront fee for reserved instance"] * 5 + ["AWS Support (Business)"],
                         np.r_[fee[:5] * 12, round(float(month.billed.sum()) * 0.03, 2)], ri=np.r_[ri[:5], -1])
    # Tax: per account and product code, on what that account was billed for it this month.
    codes = sorted(set(cat.column("product_code").tolist()))
    by_code = np.zeros((ACCOUNTS, len(codes)))
    np.add.at(by_code, (slice(None), np.searchsorted(codes, cat.column("product_code"))), month.billed)
    account, code = np.nonzero(by_code > 0)
    taxes = closing_block(TAX, np.full(len(account), whole_month), [codes[c] for c in code], [""] * len(account),
                          [f"Tax for product code {codes[c]}" for c in code],
                          np.round(by_code[account, code] * TAX_RATE, 2))
    taxes["account"] = account
    blocks = [sp_fees, ri_fees, fees, taxes]

    def joined(name: str, default: float | int) -> np.ndarray:
        return np.concatenate([np.asarray(b.get(name, np.full(len(b["kind"]), default))) for b in blocks])

    def listed(name: str) -> pa.Array:
        return pa.array([v for b in blocks for v in b[name]], pa.string())

    kind, slot = joined("kind", 0).astype(np.int64), joined("slot", 0).astype(np.int64)
    month.kinds += np.bincount(kind, minlength=len(KINDS))
    account = joined("account", 0).astype(np.int64)
    cost = joined("cost", np.nan)
    sp, ri = joined("sp", -1).astype(np.int64), joined("ri", -1).astype(np.int64)
    n = len(kind)
    return {
        "identity_line_item_id": random_strings(rng, n, 52, LOWER32),
        "identity_time_interval": take(month.slot_interval, slot),
        "line_item_line_item_type": take(list(KINDS), kind),
        "line_item_line_item_description": listed("description"),
        "line_item_usage_start_date": pa.array(month.slot_start[slot], pa.timestamp("ms")),
        "line_item_usage_end_date": pa.array(month.slot_end[slot], pa.timestamp("ms")),
        "line_item_usage_account_id": take([account_id(i) for i in range(ACCOUNTS)], account),
        "line_item_usage_account_name": take([account_name(i) for i in range(ACCOUNTS)], account),
        "line_item_product_code": listed("product"),
        "product_servicecode": listed("product"),
        "line_item_usage_type": listed("usage_type"),
        "line_item_resource_id": pc.coalesce(take(month.sp_arns, sp), take(month.ri_arns, ri), ""),
        "line_item_tax_type": take([None, "Sales"], (kind == TAX).astype(np.int64)),
        "line_item_unblended_cost": doubles(cost),
        "line_item_blended_cost": doubles(cost),
        "pricing_public_on_demand_cost": doubles(np.where(np.isin(kind, [SP_FEE, RI_FEE]), 0.0, np.nan)),
        "savings_plan_savings_plan_a_r_n": take(month.sp_arns, sp),
        "savings_plan_total_commitment_to_date": doubles(joined("sp_total", np.nan)),
        "savings_plan_used_commitment": doubles(joined("sp_used", np.nan)),
        "savings_plan_recurring_commitment_for_billing_period": doubles(joined("sp_total", np.nan)),
        "reservation_reservation_a_r_n": take(month.ri_arns, ri),
        "reservation_unused_recurring_fee": doubles(joined("ri_unused", np.nan)),
        "reservation_unused_amortized_upfront_fee_for_billing_period": doubles(
            np.where(kind == RI_FEE, 0.0, np.nan)),
    }


def to_table(columns: dict[str, pa.Array]) -> pa.Table:
    """The lines as a CUR2_SCHEMA table: the bill's constants, and null where AWS writes nothing."""
    n = len(columns["line_item_line_item_type"])
    zeros = np.zeros(n, np.int64)
    start, end = (int((t - datetime(1970, 1, 1)).total_seconds() * 1000) for t in (MONTH_START, MONTH_END))
    constants = {
        "bill_bill_type": "Anniversary", "bill_billing_entity": "AWS", "bill_payer_account_id": PAYER[0],
        "bill_invoicing_entity": "Amazon Web Services, Inc.", "bill_payer_account_name": PAYER[1],
        "line_item_currency_code": "USD", "line_item_legal_entity": "Amazon Web Services, Inc.",
        "pricing_currency": "USD",
    }
    arrays = []
    for f in CUR2_SCHEMA:
        if f.name in columns:
            arrays.append(columns[f.name])
        elif f.name in constants:
            arrays.append(take([constants[f.name]], zeros))
        elif f.name == "bill_billing_period_start_date":
            arrays.append(pa.array(np.full(n, start), pa.timestamp("ms")))
        elif f.name == "bill_billing_period_end_date":
            arrays.append(pa.array(np.full(n, end), pa.timestamp("ms")))
        else:
            arrays.append(pa.nulls(n, f.type))
    return pa.table(arrays, schema=CUR2_SCHEMA)


@dataclass
class Export:
    root: Path
    files: list[Path]
    lines: int
    seconds: float
    kinds: np.ndarray

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files)


def generate(root: Path, lines: int, files: int, seed: int = 2026) -> Export:
    """The month's delivery: `files` Parquet files written one at a time, then the manifest."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    month = Month.build(rng, lines)
    data_dir = root / EXPORT / "data" / f"BILLING_PERIOD={PERIOD}"
    meta_dir = root / EXPORT / "metadata" / f"BILLING_PERIOD={PERIOD}"
    data_dir.mkdir(parents=True)
    meta_dir.mkdir(parents=True)
    written = []
    for i in range(files):
        n = lines // files + (1 if i < lines % files else 0)
        table = to_table(usage_lines(month, rng, n))
        if i == files - 1:  # AWS's month-end lines arrive with the last part of the delivery
            table = pa.concat_tables([table, to_table(closing_lines(month, rng))])
        path = data_dir / f"{EXPORT}-{i + 1:05d}.snappy.parquet"
        pq.write_table(table, path, compression="snappy")
        written.append(path)
        del table  # one file's lines in memory at a time
    manifest = {
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:{PAYER[0]}:export/{EXPORT}",
        "exportName": EXPORT,
        "executionId": random_strings(rng, 1, 32, HEX)[0].as_py(),
        "billingPeriod": {"start": f"{MONTH_START:%Y-%m-%dT%H:%M:%S.000Z}",
                          "end": f"{MONTH_END:%Y-%m-%dT%H:%M:%S.000Z}"},
        "dataFiles": [f"s3://{BUCKET}/cur/{EXPORT}/data/BILLING_PERIOD={PERIOD}/{p.name}" for p in written],
        "columns": [{"name": f.name, "type": str(f.type)} for f in CUR2_SCHEMA],
    }
    (meta_dir / f"{EXPORT}-Manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Export(root, written, int(month.kinds.sum()), time.perf_counter() - t0, month.kinds)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

SETUP = "config + empty raw tables"
NOTHING_NEW = "next run, nothing new"
SELECT = ("+int_billing_charges",)


# The staging model's EffectiveCost, for one CUR line rather than two FOCUS rows: a commitment
# fee's charge row is 0 and its unused row carries what went unused, so the line's sum is the latter.
EFFECTIVE_COST = """
    case
        when line_item_line_item_type = 'SavingsPlanRecurringFee'
            then savings_plan_total_commitment_to_date - savings_plan_used_commitment
        when line_item_line_item_type = 'RIFee'
            then coalesce(reservation_unused_amortized_upfront_fee_for_billing_period, 0)
                + coalesce(reservation_unused_recurring_fee, 0)
        when line_item_line_item_type = 'SavingsPlanCoveredUsage' then savings_plan_savings_plan_effective_cost
        when line_item_line_item_type in ('SavingsPlanNegation', 'SavingsPlanUpfrontFee') then 0
        when line_item_line_item_type = 'DiscountedUsage' then reservation_effective_cost
        when line_item_line_item_type = 'Fee' and coalesce(reservation_reservation_a_r_n, '') <> '' then 0
        else line_item_unblended_cost
    end
"""


def reference(files: list[Path]) -> dict[tuple, float]:
    """EffectiveCost by day and service straight from the Parquet files."""
    con = duckdb.connect()
    try:
        rows = con.execute(f"""
            select cast(line_item_usage_start_date as date) as day, line_item_product_code as service,
                   sum({EFFECTIVE_COST}) as effective_cost
            from read_parquet({sql_list(files)})
            group by all
        """).fetchall()
    finally:
        con.close()
    return {(day, service): cost for day, service, cost in rows}


def ingest(db: Path, root: Path) -> int:
    with connect(db, memory_limit=Config().memory_limit) as con:  # as the ingest asset, under the default limit
        report = load_aws_cur(con, LocalLanding(root), EXPORT, progress=lambda _: None)
    if report.quarantined:
        raise RuntimeError(f"the generated export had quarantined rows: {report.problems}")
    return sum(report.rows.values())


def pipeline_totals(db: Path) -> tuple[dict[tuple, Decimal], int, int]:
    with connect(db, read_only=True) as con:
        rows = con.execute("""
            select cast(charge_period_start as date), service_name, sum(effective_cost)
            from intermediate.int_billing_charges where provider_name = 'AWS' group by all
        """).fetchall()
        charges = con.execute("select count(*) from intermediate.int_billing_charges").fetchone()[0]
        raw = con.execute("select count(*) from raw.aws_cur").fetchone()[0]
    return {(day, service): cost for day, service, cost in rows}, charges, raw


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def stage_row(s: Stage, lines: int, ref: Stage) -> tuple[str, ...]:
    # the setup writes a few small tables, whatever the month's size; a run with nothing new reads no line
    per_line = s.name != SETUP and not s.name.startswith(NOTHING_NEW)
    return (s.name, f"{s.seconds:.2f}", f"{lines / s.seconds:,.0f}" if per_line else "",
            f"{s.seconds / ref.seconds:.1f}x", gib(s.peak_rss) if s.peak_rss else "")


def check_totals(ref: dict[tuple, float], got: dict[tuple, Decimal]) -> tuple[bool, str]:
    ref_total = Decimal(repr(math.fsum(ref.values())))
    got_total = sum(got.values(), Decimal(0))
    keys = ref.keys() | got.keys()
    off = [k for k in keys if abs(Decimal(repr(ref.get(k, 0.0))) - got.get(k, Decimal(0))) >= Decimal("0.01")]
    ok = abs(ref_total - got_total) < Decimal("0.01") and not off
    return ok, (f"EffectiveCost: int_billing_charges {got_total:,.2f} vs reference {ref_total:,.2f} "
                f"(diff {got_total - ref_total:+.6f}); {len(keys) - len(off)}/{len(keys)} day x service sums "
                f"agree to the cent -> {'OK' if ok else 'MISMATCH'}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=10_000_000, help="CUR line items to generate")
    parser.add_argument("--files", type=int, default=10, help="Parquet files in the delivery")
    add_workdir_options(parser, "export, DuckDB, dbt logs")
    args = parser.parse_args()
    with workdir(args.workdir, args.keep) as work:
        return bench(work, args.lines, args.files, args.dbt)


def bench(work: Path, lines: int, files: int, dbt_command: str) -> int:
    # release_arrow: each stage's peak RSS starts from what is in use, not Arrow's cached pages.
    export, gen = measure("generation", lambda: generate(work / "landing", lines, files), release_arrow=True)
    mix = ", ".join(f"{k} {c / export.lines:.2%}" for k, c in zip(KINDS, export.kinds, strict=True) if c)
    print(f"generated {export.lines:,} CUR 2.0 line items for {PERIOD} in {len(export.files)} file(s) "
          f"({export.bytes / GIB:.2f} GiB Parquet) in {export.seconds:.1f} s, {export.lines / export.seconds:,.0f} "
          f"lines/s (not measured below)\nline mix: {mix}\n", flush=True)

    db = work / "warehouse.duckdb"
    # The reference takes a fraction of a second, so one run is at the mercy of scheduling noise:
    # take the median of three (each on a fresh connection).
    runs = [measure("reference: read_parquet + sum by day", lambda: reference(export.files), release_arrow=True)
            for _ in range(3)]
    ref_result, ref = sorted(runs, key=lambda r: r[1].seconds)[1]
    # A line as each stage ends, so a run the kernel kills for memory still shows how far it got.
    print(f"reference done in {ref.seconds:.2f} s (median of three)", flush=True)
    loaded, load = measure("load_aws_cur -> raw.aws_cur", lambda: ingest(db, export.root), release_arrow=True)
    print(f"load_aws_cur done in {load.seconds:.1f} s, peak RSS {gib(load.peak_rss)}", flush=True)
    _, setup = measure(SETUP, lambda: prepare_warehouse(db, Config()), release_arrow=True)
    child, dbt = measure(f"dbt {dbt_command} " + " ".join(SELECT), lambda: run_dbt(db, work, dbt_command, SELECT),
                         release_arrow=True)
    # This process's peak over the run; the dbt row then shows the dbt child's own peak (wait4).
    own = own_peak([gen, ref, load, setup, dbt])
    dbt.peak_rss, dbt.cpu_seconds = child.peak_rss, child.cpu_seconds
    total = Stage("pipeline total", load.seconds + setup.seconds + dbt.seconds, None)
    print(table(("stage", "wall s", "rows/s", "vs reference", "peak RSS"),
                [stage_row(s, export.lines, ref) for s in (ref, load, setup, dbt, total)]))

    raw_parquet = sum(f.stat().st_size for f in db.with_name(db.name + ".raw").rglob("*.parquet"))
    print(f"\npeak RSS: this process {gib(own)} (generation {gib(gen.peak_rss)}, reference "
          f"{gib(ref.peak_rss)}, load {gib(load.peak_rss)}); dbt child {gib(dbt.peak_rss)}, "
          f"{dbt.cpu_seconds:.1f} s CPU in {dbt.seconds:.1f} s wall; DuckDB file {gib(db.stat().st_size)}, "
          f"raw Parquet beside it {gib(raw_parquet)}")
    print(dbt_node_line(work))

    got, charges, raw = pipeline_totals(db)
    ok, line = check_totals(ref_result, got)
    commitment_fees = int(export.kinds[SP_FEE] + export.kinds[RI_FEE])
    rows_ok = raw == loaded == export.lines and charges == export.lines + commitment_fees
    print(f"rows: {raw:,} in raw.aws_cur, {charges:,} in int_billing_charges (= lines + {commitment_fees:,} "
          f"commitment fees split in two) -> {'OK' if rows_ok else 'MISMATCH'}")
    print(line)

    # What a daily run then costs for the month: the delivery listed and found unchanged, the charges
    # kept (int_billing_charges rebuilds the billing periods that changed), the tests run again.
    reloaded, reload = measure(f"{NOTHING_NEW}: load_aws_cur", lambda: ingest(db, export.root))
    child, rebuild = measure(f"{NOTHING_NEW}: dbt {dbt_command}",
                             lambda: run_dbt(db, work, dbt_command, SELECT))
    rebuild.peak_rss = child.peak_rss
    print("\n" + table(("stage", "wall s", "rows/s", "vs reference", "peak RSS"),
                       [stage_row(s, export.lines, ref) for s in (reload, rebuild)]))
    print(dbt_node_line(work))
    return 0 if ok and rows_ok and reloaded == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
