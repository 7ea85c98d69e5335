"""One line of any provider's bill, as the ground truth needs it: the costs the provider's own
rules give it, the hours it covers, and whether it is a GPU instance's compute."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ingest.demo_fleet.plan import Instance


@dataclass
class BillLine:
    provider: str  # FOCUS ProviderName
    account: str  # billing account
    period: str  # billing period, YYYY-MM (GCP: the invoice month, in US Pacific time)
    start: datetime
    end: datetime
    kind: str  # the provider's own line type (CUR line item type, GCP cost type, FOCUS charge category)
    billed: float
    effective: float
    list_cost: float
    resource_id: str | None
    team_tag: str | None
    instance: Instance | None  # set on a GPU instance's compute (rule 2)
    row: dict = field(default_factory=dict)  # the line as the provider's export writes it
