"""Every page renders for the roles it is for, in English and in French, with the strict page CSP; the
vendored assets match their manifest; the public pages use the page Environment."""

import hashlib
import re
from pathlib import Path

import pytest
from sqlmodel import Session, select

from service.accounts.demo import DEMO_LOGINS_FILE
from service.app import create_app
from service.demo import seed_demo
from service.models import Role
from tests.page_support import browser_client, signed_in_client

ROOT = Path(__file__).resolve().parent.parent
PAGES = [
    "/app/dashboard",
    "/app/analytics",
    "/app/campaigns",
    "/app/campaigns/new",
    "/app/campaigns/1",
    "/app/campaigns-who",
    "/app/newsletter",
    "/app/newsletter/issues/new",
    "/app/newsletter/issues/1",
    "/app/newsletter/articles/1",
    "/app/connections",
    "/app/directory",
    "/app/directory/import",
    "/app/directory/sync",
    "/app/addin",
    "/app/relay",
    "/app/templates",
    "/app/templates/1",
    "/app/deployments",
    "/app/admin/users",
    "/app/admin/keys",
    "/app/account",
]
FRENCH = {
    "/app/dashboard": "Dernière lettre",  # the newsletter feature's panel, in French
    "/app/analytics": "Statistiques",
    "/app/campaigns": "Campagnes",
    "/app/campaigns-who": "Qui voit quoi",
    "/app/newsletter": "Lettre interne",
    "/app/directory": "Annuaire",
    "/app/deployments": "Déploiements",
    "/app/templates": "Modèles de signature",
    "/app/admin/users": "Utilisateurs",
    "/app/directory/sync": "Synchronisation de l'annuaire",
    "/app/addin": "Complément Outlook",
    "/app/relay": "Relais de flux de messagerie",
}


@pytest.fixture
def demo(db, settings):
    with Session(db) as s:
        seed_demo(s, settings)
        s.commit()
    logins = {line.split()[0]: line.split() for line in (settings.data_dir / DEMO_LOGINS_FILE).read_text().splitlines()}
    return create_app(settings=settings, engine=db), logins


def _pages(engine) -> list[str]:
    """PAGES with the demo's real ids (PostgreSQL sequences are not reset between tests)."""
    from newsletter.models import Article, Issue
    from signatures.campaigns.models import Campaign
    from signatures.models import SignatureTemplate

    with Session(engine) as s:
        ids = {"campaigns": s.exec(select(Campaign.id)).first(), "newsletter/issues": s.exec(select(Issue.id)).first(),
               "newsletter/articles": s.exec(select(Article.id)).first(),
               "templates": s.exec(select(SignatureTemplate.id)).first()}  # fmt: skip
    return [re.sub(r"^/app/(.+)/1$", lambda m: f"/app/{m.group(1)}/{ids[m.group(1)]}", p) for p in PAGES]


def test_every_page_renders_in_english_and_french(demo, db):
    app, logins = demo
    client = signed_in_client(app, logins["admin"][1], logins["admin"][2])
    pages = _pages(db)
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[-500:])
        assert "script-src 'self'" in r.headers["content-security-policy"], path
        # nothing inline for the CSP to block: no <script> body, no style attribute, no <style> element
        assert not re.search(r"<script>|<style|<[a-zA-Z][^>]*\sstyle=", r.text), path
        assert '<html lang="en">' in r.text, path
    for path in pages:
        r = client.get(path, headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
        assert r.status_code == 200 and '<html lang="fr">' in r.text, path
        assert "Se déconnecter" in r.text, path
        if path in FRENCH:
            assert FRENCH[path] in r.text, path


def test_a_users_language_setting_wins_over_the_browser(demo):
    app, logins = demo
    client = signed_in_client(app, logins["comms"][1], logins["comms"][2])
    page = client.get("/app/account")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    client.post("/app/account", data={"csrf": token, "language": "fr", "name": "Camille"})
    r = client.get("/app/dashboard", headers={"Accept-Language": "en"})
    assert '<html lang="fr">' in r.text and "Clics humains" in r.text


def test_bad_input_on_pages_gets_inline_errors_not_a_500(demo):
    app, logins = demo
    client = signed_in_client(app, logins["admin"][1], logins["admin"][2])
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/campaigns/new").text).group(1)
    r = client.post(
        "/app/campaigns/new",
        data={
            "csrf": token,
            "name": "",
            "destination_url": "https://a.example",
            "starts_at": "not a date",
            "state": "draft",
        },
    )
    assert r.status_code == 422 and 'class="error"' in r.text and 'aria-invalid="true"' in r.text
    r = client.post(
        "/app/campaigns/new",
        data={
            "csrf": token,
            "name": "Spring",
            "destination_url": "ftp://x",
            "starts_at": "2026-03-01T09:00",
            "state": "draft",
            "v-0-banner_id": "1",
            "v-0-alt": "Spring",
            "v-0-share": "100",
            "everyone": "on",
        },
    )
    assert r.status_code == 422 and "alert-error" in r.text
    upload = client.post(
        "/app/campaigns-banner",
        files={"banner": ("x.png", b"not an image", "image/png")},
        headers={"X-CSRF-Token": token},
    )
    assert upload.status_code == 200 and "not a PNG" in upload.text
    r = client.post(
        "/app/directory/import",
        data={"csrf": token},
        files={"file": ("p.csv", b"email,first_name\nnot-an-email,X\n", "text/csv")},
    )
    assert r.status_code == 422 and "not an email address" in r.text
    assert client.get("/app/deployments/999").status_code == 404
    assert client.get("/app/templates/999").status_code == 404


def test_vendored_assets_match_their_manifest():
    manifest = (ROOT / "vendor-manifest.txt").read_text().splitlines()
    entries = [line.split() for line in manifest if line and not line.startswith("#")]
    assert {e[2].split("@")[0] for e in entries} == {"htmx.org", "chart.js", "axe-core", "swagger-ui-dist", "redoc"}
    for digest, path, spec in entries:
        data = (ROOT / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, f"{path} differs from {spec}: run scripts/vendor-assets.sh"
    licences = [e for e in entries if "LICENSE" in e[1]]
    assert len(licences) == 5  # one per package


def test_static_assets_and_the_brand_stylesheet_are_served(client):
    js = client.get("/static/vendor/htmx/htmx.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert client.get("/static/app.css").status_code == 200
    css = client.get("/brand.css?c=F4B942")
    assert "--brand: #F4B942" in css.text and "--brand-ink: #1b2430" in css.text  # dark text on a light colour
    assert "--brand: #1F3A5F" in client.get("/brand.css?c=;}body{display:none").text  # only a hex colour gets in


def test_public_pages_follow_the_visitors_language(client):
    en = client.get("/c/unknown-token")
    assert en.status_code == 404 and "This link does not exist" in en.text
    fr = client.get("/c/unknown-token", headers={"Accept-Language": "fr"})
    assert fr.status_code == 404 and ("Ce lien n&#39;existe pas" in fr.text or "Ce lien n'existe pas" in fr.text)
    assert "frame-ancestors 'none'" in fr.headers["content-security-policy"]
    assert browser_client(client.app).get("/u/" + "x" * 22).status_code == 404


def test_pages_refuse_another_organisations_ids(demo, db):
    """The page twin of test_tenancy's walk: an admin of another organisation gets 404 for each id of A's."""
    from service.accounts.models import User
    from service.models import ApiKey
    from tests.conftest import make_tenant
    from tests.page_support import make_user
    from tests.routes_support import api_routes

    app, _logins = demo
    _pages(db)  # the demo's rows exist
    with Session(db) as s:
        from advocacy.charter.models import CharterComment
        from advocacy.feeds.models import Feed, FeedItem
        from advocacy.recognition.models import Contest
        from newsletter.models import Article, Issue
        from portal.models import ProfileCorrection
        from signatures.campaigns.models import Campaign
        from signatures.deploy import engine as deploy_engine
        from signatures.models import SignatureTemplate

        org_a = s.exec(select(Campaign.org_id)).first()
        dep = deploy_engine.create_deployment(
            s, org_id=org_a, provider="file", dry_run=True, target_filter={}, created_by="test"
        )
        from service.directory.models import DirectorySync

        sync = DirectorySync(org_id=org_a, source="csv", trigger="import", state="done")
        s.add(sync)
        s.commit()
        models = {
            "campaign_id": Campaign,
            "issue_id": Issue,
            "article_id": Article,
            "template_id": SignatureTemplate,
            "user_id": User,
            "key_id": ApiKey,
            "contest_id": Contest,
            "comment_id": CharterComment,
            "correction_id": ProfileCorrection,  # the demo has one waiting for IT
            "feed_id": Feed,
            "item_id": FeedItem,
        }
        ids = {name: s.exec(select(model.id)).first() for name, model in models.items()}
        ids["deployment_id"] = dep.id
        ids["sync_id"] = sync.id
    other = make_tenant(db, slug="other")
    make_user(db, other.org_id, Role.admin, email="boss@other.example")
    client = signed_in_client(app, "boss@other.example")
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/app/account").text).group(1)
    walked, leaks = 0, []
    for route in api_routes(app.routes):
        params = set(re.findall(r"\{([^}]+)\}", route.path))
        if not route.path.startswith("/app/") or not params or params <= {"provider"}:
            continue
        assert params <= ids.keys(), f"{route.path}: add an id for {params - ids.keys()}"
        url = route.path.format(**{p: ids[p] for p in params})
        for method in sorted(route.methods - {"HEAD"}):
            extra = {"mailbox": "x@acme.example"} if url.endswith("/diff") else {}
            data = {"csrf": token} if method == "POST" else None
            r = client.request(method, url, params=extra, data=data, headers={"X-CSRF-Token": token})
            walked += 1
            if r.status_code != 404:
                leaks.append(f"{method} {url} answered {r.status_code}")
    assert leaks == [], leaks
    assert walked >= 15
