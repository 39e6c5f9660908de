"""A demo organisation, seeded on first run so a newcomer sees signatures at once."""

import io
import random
import unicodedata

from PIL import Image, ImageDraw
from sqlmodel import Session, select

from service import features
from service.assets import asset_url, store_asset
from service.auth import create_api_key
from service.db import row_id
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from service.models import Brand, Organisation, Role
from service.settings import Settings

DEMO_KEY_FILE = "demo-admin-key"

FIRST = ["Camille", "Léa", "Hugo", "Chloé", "Lucas", "Inès", "Jules", "Zoé", "Louis", "Manon", "Noah", "Sarah",
         "Aoife", "Siobhán", "Mateo", "Björn", "Yasmine", "Karim", "Anaïs", "Théo", "Noa", "Amira", "Élodie",
         "Rafael", "Maëlle"]  # fmt: skip
LAST = ["Martin", "Bernard", "Dubois", "Thomas", "Robert", "O'Neil", "Petit", "Durand", "Leroy", "Moreau",
        "Simon", "Laurent", "Lefèvre", "Michel", "García", "Nguyen", "Müller", "Rousseau", "Fontaine",
        "Chevalier-Delacroix"]  # fmt: skip
DEPARTMENTS = {
    "Sales": ["Account Executive", "Sales Manager", "Business Developer"],
    "Marketing": ["Content Strategist", "Brand Manager", "Social Media Lead"],
    "Engineering": ["Software Engineer", "Staff Engineer", "Engineering Manager"],
    "R&D <Ops>": ["Research Scientist", "Lab Operations Lead"],
    "People": ["HR Business Partner", "Talent Acquisition"],
    "Finance": ["Financial Controller", "Accountant"],
}
OFFICES = {"Paris": "+33 1 84 88 00 ", "Lyon": "+33 4 27 46 00 "}


def demo_logo_png() -> bytes:
    """A small brand mark on a solid background (safe in dark mode)."""
    img = Image.new("RGB", (320, 96), "#FFFFFF")
    draw = ImageDraw.Draw(img)
    draw.rectangle([8, 16, 72, 80], fill="#1F3A5F")
    draw.polygon([(24, 64), (40, 32), (56, 64)], fill="#F4B942")
    draw.text((88, 34), "ACME Logistique", fill="#1F3A5F", font_size=26)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def avatar_png(initials: str, color: str) -> bytes:
    """A square initials avatar (signature photos are plain <img>: no rounded corners in Outlook)."""
    img = Image.new("RGB", (160, 160), color)
    ImageDraw.Draw(img).text((80, 80), initials, fill="#FFFFFF", font_size=64, anchor="mm")
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


AVATAR_COLORS = ["#1F3A5F", "#2E6F6A", "#7A4E2D", "#5B3A7A", "#8A2E3B"]


def demo_people(count: int = 50, seed: int = 7, photo_url=None) -> list[DirectoryPerson]:
    rng = random.Random(seed)
    people, used = [], set()
    extras = [("Ahmed", "الحسيني"), ("Noa", "כהן"), ("Seán", "O'Neil")]  # right-to-left and apostrophes
    for i in range(count):
        first, last = extras[i] if i < len(extras) else (rng.choice(FIRST), rng.choice(LAST))
        ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
        local = ascii_name.lower().replace("'", "").replace(" ", "")
        local = local.strip(".") or f"user{i}"
        while local in used:
            local += str(i)
        used.add(local)
        dept = list(DEPARTMENTS)[i % len(DEPARTMENTS)]
        office = list(OFFICES)[i % 2]
        people.append(DirectoryPerson(
            source_id=f"demo-{i:03d}", email=f"{local}@acme.example", first_name=first, last_name=last,
            title=rng.choice(DEPARTMENTS[dept]), department=dept, office=office,
            location=f"{office}, France", phone=f"{OFFICES[office]}{10 + i:02d}" if i % 5 else None,
            mobile=f"+33 6 12 34 {56 + i % 40:02d} {10 + i:02d}" if i % 3 else None, locale="fr-FR",
            groups=("leaders",) if i % 10 == 0 else (),
            aliases=(f"{local}@acme-logistique.example",) if i % 7 == 0 else (),
            photo_url=photo_url(first[0] + last[0], AVATAR_COLORS[i % 5]) if photo_url and i % 4 else None,
        ))  # fmt: skip
    return people


def seed_demo(session: Session, settings: Settings) -> str | None:
    """Seed once; return the new admin key (also written to the data dir with 0600), or None if seeded."""
    if session.exec(select(Organisation)).first() is not None:
        return None
    org = Organisation(name="ACME Logistique", slug="acme", timezone="Europe/Paris")
    session.add(org)
    session.flush()
    logo = asset_url(settings, store_asset(settings, demo_logo_png(), "png"))
    session.add(Brand(
        org_id=row_id(org), company_name="ACME Logistique", website="https://acme.example", logo_url=logo,
        logo_width=160, logo_height=48, primary_color="#1F3A5F", secondary_color="#5B6675",
        address="12 rue de la Paix, 75002 Paris",
        social_links=[{"network": "LinkedIn", "url": "https://www.linkedin.com/company/acme-example"},
                      {"network": "X", "url": "https://x.com/acme_example"}],
        disclaimer_html="<p>This email and any attachments are confidential and intended solely for the "
                        "addressee. If you received it in error, please tell the sender and delete it.</p>",
    ))  # fmt: skip

    def photo(initials: str, color: str) -> str:
        return asset_url(settings, store_asset(settings, avatar_png(initials, color), "png"))

    people = demo_people(photo_url=photo)
    apply_listing(session, org_id=row_id(org), source="demo", listing=Listing(people=people), dry_run=False)
    for seed_feature in features.demo_seeds():  # each feature seeds its own part (templates, campaigns...)
        seed_feature(session, settings, row_id(org))
    _row, key = create_api_key(session, org_id=row_id(org), name="demo admin", role=Role.admin)
    session.flush()
    path = settings.ensure_data_dir() / DEMO_KEY_FILE
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key
