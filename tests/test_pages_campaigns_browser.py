"""The comms journey through an A/B test and "who sees what" in Debian's chromium: add a second variant to the
demo campaign with a new banner, preview it, save, then see a campaign scheduled months ahead in the
signatures of that day. axe-core checks each page (0 serious or critical), as in test_pages_browser."""

from datetime import timedelta

import pytest
from sqlmodel import Session, select

from service.db import utcnow
from service.models import Organisation
from signatures.campaigns.models import BannerImage, CampaignIn, CampaignState
from signatures.campaigns.service import create_campaign
from tests.campaign_helpers import png
from tests.test_pages_browser import Visit, browser, site  # noqa: F401 - the fixtures of the page journeys

pytestmark = pytest.mark.browser


@pytest.fixture
def winter(db, site):  # noqa: F811 - the imported fixture
    """A campaign for everyone, scheduled 100 days ahead with the demo's banner (the demo's own ends at +60)."""
    with Session(db) as s:
        org = s.exec(select(Organisation)).first()
        banner = s.exec(select(BannerImage).where(BannerImage.org_id == org.id)).first()
        starts = utcnow() + timedelta(days=100)
        create_campaign(s, org_id=org.id, body=CampaignIn(
            name="Winter fair", destination_url="https://acme.example/winter", starts_at=starts,
            ends_at=starts + timedelta(days=30), state=CampaignState.scheduled, banner_id=banner.id,
            alt="Winter fair banner", priority=5))  # fmt: skip
        s.commit()
    return (starts + timedelta(days=2)).date().isoformat()


def test_an_ab_test_then_who_sees_what_on_a_future_date(browser, site, winter):  # noqa: F811
    base, logins, _sink = site
    v = Visit(browser, base, "comms-ab")
    try:
        v.sign_in(*logins["comms"])
        page = v.page
        v.go("/app/campaigns")
        page.get_by_role("link", name="Salon 2027").click()
        page.wait_for_load_state("networkidle")
        page.get_by_role("button", name="Add a variant").click()
        page.wait_for_selector("#variant-b")
        assert page.locator("#f-v-0-share").input_value() == "50" and page.locator("#f-v-1-share").input_value() == "50"
        assert page.locator("#f-state").input_value() == "scheduled"  # running: saving keeps it published
        page.set_input_files(
            "#f-v-1-banner", files=[{"name": "b.png", "mimeType": "image/png", "buffer": png(color="#AA3300")}]
        )
        page.wait_for_selector("#banner-picker-1 input[type=radio]:checked")
        page.locator("#f-v-1-alt").fill("Salon 2027, variant B")
        page.locator("#f-v-1-url").fill("https://acme.example/salon-b")
        page.locator("#f-v-1-share").fill("40")
        page.locator("#f-v-0-share").fill("60")
        page.locator("#f-v-0-share").press("Tab")  # change: the live preview refreshes
        page.wait_for_function("() => document.querySelectorAll('#live iframe').length === 2")
        variant_b = page.frame_locator("#live iframe").nth(1)
        variant_b.locator("img[alt='Salon 2027, variant B']").wait_for()
        assert variant_b.locator("a[href='https://acme.example/salon-b']").count() == 1
        assert page.locator("#ab-figures").is_visible()  # the figures per variant, before saving
        v.check("campaign-ab")
        page.get_by_role("button", name="Save the campaign").click()
        page.wait_for_load_state("networkidle")
        assert page.url.split("?")[0].endswith("/app/campaigns") and page.locator(".toast").count() == 1
        assert page.locator("tr", has_text="Salon 2027").locator(".badge", has_text="A/B").count() == 1
        assert page.locator("tr", has_text="Salon 2027").locator(".badge-active").count() == 1
        page.get_by_role("link", name="Who sees what").click()
        page.wait_for_load_state("networkidle")
        v.check("who-sees-what-today")
        page.locator("#f-date").fill(winter)
        page.get_by_role("button", name="Show").click()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("link", name="Winter fair").count() == 1
        first = page.frame_locator("iframe.preview-frame").first
        first.locator("img[alt='Winter fair banner']").wait_for()
        assert "Winter fair: the only live campaign" in page.locator(".why").first.inner_text()
        v.check("who-sees-what-future")
    finally:
        v.close()
