"""A campaign's A/B figures: human clicks, banner image loads and click rate per variant, from the click
figures' `variant` grouping (the one report every figure comes from), with ab_test's verdict on the difference."""

from dataclasses import dataclass

from sqlmodel import Session

from service.clicks.reports import figures
from signatures.campaigns.ab_test import Arm, Verdict, compare
from signatures.campaigns.service import variants_of


@dataclass(frozen=True)
class VariantFigures:
    key: str
    human: int
    loads: int
    rate: float | None  # human clicks / image loads


@dataclass(frozen=True)
class CampaignFigures:
    rows: list[VariantFigures]  # the campaign's current variants, in key order
    verdict: Verdict


def variant_figures(session: Session, *, org_id: int, campaign_id: int) -> CampaignFigures:
    by_key = {r["variant"]: r for r in figures(session, org_id=org_id, group_by=["variant"], campaign_id=campaign_id)}
    rows = []
    for v in variants_of(session, [campaign_id])[campaign_id]:
        r = by_key.get(v.key, {})
        human, loads = int(r.get("human") or 0), int(r.get("impressions") or 0)
        rows.append(VariantFigures(v.key, human, loads, human / loads if loads else None))
    return CampaignFigures(rows, compare([Arm(r.key, r.human, r.loads) for r in rows]))
