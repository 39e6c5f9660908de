"""The signatures feature's part of the demo: a template with new-mail and reply signatures, and an active banner
campaign with two weeks of clicks and image loads, so the figures endpoints show something at once."""

import io
import random

from PIL import Image, ImageDraw
from sqlmodel import Session, select

from service.db import row_id
from service.settings import Settings
from signatures.layouts import LAYOUTS
from signatures.models import AssignmentKind, SignatureTemplate, TemplateAssignment, TemplateVersion


def seed(session: Session, settings: Settings, org_id: int) -> None:
    layout = LAYOUTS["classic"]
    template = SignatureTemplate(org_id=org_id, name="Corporate", description="Classic layout with photo")
    session.add(template)
    session.flush()
    session.add(
        TemplateVersion(
            template_id=row_id(template),
            version=1,
            new_source=layout.new_source,
            reply_source=layout.reply_source,
            created_by="demo",
        )
    )
    session.add(TemplateAssignment(org_id=org_id, template_id=row_id(template), kind=AssignmentKind.default, value=""))
    seed_campaign_and_clicks(session, settings, org_id)


def demo_banner_png() -> bytes:
    img = Image.new("RGB", (600, 100), "#1F3A5F")
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, 12, 100], fill="#F4B942")
    draw.text((36, 28), "Salon Transport & Logistique 2027", fill="#FFFFFF", font_size=26)
    draw.text((36, 62), "Retrouvez-nous stand B12  >", fill="#F4B942", font_size=18)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def seed_campaign_and_clicks(session: Session, settings: Settings, org_id: int) -> None:
    """An active banner campaign and two weeks of clicks, so the figures endpoints show something at once."""
    from datetime import timedelta

    from service.clicks.models import Click, Impression, Verdict
    from service.clicks.verdicts import Reason
    from service.db import utcnow
    from service.directory.models import Employee
    from service.links import resolve
    from signatures.campaigns.models import CampaignIn, CampaignState
    from signatures.campaigns.service import Rotation, create_campaign, upload_banner

    now = utcnow()
    banner = upload_banner(session, settings=settings, org_id=org_id, data=demo_banner_png())
    create_campaign(session, org_id=org_id, body=CampaignIn(
        name="Salon 2027", destination_url="https://acme.example/salon-2027", starts_at=now - timedelta(days=14),
        ends_at=now + timedelta(days=60), state=CampaignState.active, banner_id=banner.id,
        alt="Salon Transport & Logistique 2027: stand B12"))  # fmt: skip
    rotation = Rotation(session, org_id=org_id, at=now)
    rng = random.Random(11)
    employees = session.exec(select(Employee).where(Employee.org_id == org_id)).all()
    for emp in employees:
        shown = rotation.banner_for(emp, base_settings=settings)
        if shown is None:
            continue
        link = resolve(session, shown.href.rsplit("/", 1)[1])
        assert link is not None  # minted just above by banner_for
        for _ in range(rng.randint(5, 40)):  # image loads: proxies and Apple's privacy protection load them all
            session.add(Impression(org_id=org_id, link_id=link.id, employee_id=emp.id, campaign_id=link.campaign_id,
                                   occurred_at=now - timedelta(hours=rng.uniform(1, 330)), verdict=Verdict.human,
                                   visitor=f"{rng.getrandbits(60):015x}"))  # fmt: skip
        for _ in range(rng.randint(0, 9)):
            verdict = rng.choices(list(Verdict), weights=[6, 3, 1])[0]
            reasons = {"human": "", "scanner": Reason.ua_scanner, "crawler": Reason.ua_preview}[verdict.value]
            session.add(Click(org_id=org_id, link_id=link.id, employee_id=emp.id, campaign_id=link.campaign_id,
                              channel=link.channel, occurred_at=now - timedelta(hours=rng.uniform(1, 330)),
                              verdict=verdict, reasons=reasons, visitor=f"{rng.getrandbits(60):015x}"))  # fmt: skip
    session.flush()
