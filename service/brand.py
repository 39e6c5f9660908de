"""The one way to read an organisation's brand, saved or not.

An organisation that has not set its brand yet (PUT /api/brand) still has one: the defaults
(service.models.BRAND_DEFAULTS) under the organisation's name, so a fresh organisation can render a signature,
preview a newsletter and read GET /api/brand. Nothing is written until someone saves it.
"""

from sqlmodel import Session, select

from service.errors import NotFound
from service.models import Brand, Organisation


def brand_for(session: Session, org_id: int) -> Brand:
    """The organisation's saved brand, or an unsaved default one named after the organisation."""
    brand = session.exec(select(Brand).where(Brand.org_id == org_id)).first()
    if brand is not None:
        return brand
    org = session.get(Organisation, org_id)
    if org is None:
        raise NotFound(f"There is no organisation {org_id}.")
    return Brand(org_id=org_id, company_name=org.name)


def is_saved(brand: Brand) -> bool:
    return brand.id is not None
