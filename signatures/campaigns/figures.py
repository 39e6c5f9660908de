"""The campaigns' contribution to the click figures: group by the A/B variant a banner link belongs to."""

from sqlmodel import col, select

from service.clicks.dimensions import Dimension, Label
from signatures.campaigns.models import Campaign, CampaignLink, CampaignVariant


def _join_variant(query, table):
    return query.outerjoin(CampaignLink, CampaignLink.link_id == table.link_id).outerjoin(
        CampaignVariant, CampaignVariant.id == CampaignLink.variant_id
    )


VARIANT = Dimension("variant", column=lambda: CampaignVariant.key, join=_join_variant)  # "a", "b"...


def _campaign_names(session, org_id: int, ids: list[int]) -> dict[int, str]:
    rows = session.exec(select(Campaign.id, Campaign.name).where(Campaign.org_id == org_id, col(Campaign.id).in_(ids)))
    return dict(rows.all())


CAMPAIGN_NAMES = Label("campaign", "campaign_name", _campaign_names)
