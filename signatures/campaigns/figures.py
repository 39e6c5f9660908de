"""The campaigns' contribution to the click figures: group by the A/B variant a banner link belongs to."""

from service.clicks.dimensions import Dimension
from signatures.campaigns.models import CampaignLink, CampaignVariant


def _join_variant(query, table):
    return query.outerjoin(CampaignLink, CampaignLink.link_id == table.link_id).outerjoin(
        CampaignVariant, CampaignVariant.id == CampaignLink.variant_id
    )


VARIANT = Dimension("variant", column=lambda: CampaignVariant.key, join=_join_variant)  # "a", "b"...
