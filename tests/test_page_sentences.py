"""Service sentences on French pages: every sentence marked with N_ has a French translation with the same
parameters, and each page's error path rendered in French shows none of the known English sentences (while the
API keeps answering in English)."""

import html
import json
import pickle
import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from sqlmodel import Session, select

from service.accounts.demo import DEMO_LOGINS_FILE
from service.app import create_app
from service.demo import seed_demo
from service.directory.models import DirectorySync
from service.pages import environment, use_language
from service.sentences import N_, Sentence
from tests.fakes.google import fake_google
from tests.page_support import csrf_of, signed_in_client

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "translations" / "fr" / "LC_MESSAGES" / "messages.po"
PLACEHOLDER = re.compile(r"%\(\w+\)[sr]")


def _marked() -> list[str]:
    """Every N_("...") message id in the Python that pages use (the babel.cfg packages)."""
    ids = []
    for package in ("service", "signatures", "newsletter"):
        for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords={"N_": None}
        ):
            ids.append(message)
    return sorted(set(ids))


def _catalog():
    with CATALOG.open("rb") as f:
        return read_po(f, locale="fr")


def _english_fragments() -> set[str]:
    """The literal parts of the English sentences (split at their parameters), long enough to be telling, that
    their French translation does not also contain (commands, settings and product names stay as they are)."""
    catalog = _catalog()
    fragments = set()
    for msgid in _marked():
        french = catalog[msgid].string if catalog.get(msgid) else ""
        for part in PLACEHOLDER.split(msgid.replace("%%", "%")):
            part = part.strip(" .,;:()'\"")
            if len(part) >= 24 and len(part.split()) >= 4 and part not in french:
                fragments.add(part)
    return fragments


def test_every_marked_sentence_has_a_french_translation():
    catalog = _catalog()
    unfilled = [m.id for m in catalog if m.id and not all(m.string if isinstance(m.string, tuple) else [m.string])]
    assert unfilled == [], unfilled  # every form of every entry, plurals included
    marked = _marked()
    assert len(marked) > 200  # the CSV import, lint, connections, campaigns, sync, add-in and relay sentences
    missing = [m for m in marked if not catalog.get(m) or not catalog[m].string]
    assert missing == [], missing
    for msgid in marked:
        french = catalog[msgid].string
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(french)), msgid


def test_a_sentence_is_english_for_the_api_and_french_on_a_page():
    s = N_("%(email)s already appears on line %(line)s", email="<b>ana@acme.example</b>", line=3)
    assert s == "<b>ana@acme.example</b> already appears on line 3" and isinstance(s, str)
    assert json.dumps({"m": s}) == '{"m": "<b>ana@acme.example</b> already appears on line 3"}'
    assert pickle.loads(pickle.dumps(s)).params == s.params  # queued jobs keep the parameters
    use_language("fr")
    try:
        page = environment().from_string("{{ s|tr }}").render(s=s)
        assert page == "&lt;b&gt;ana@acme.example&lt;/b&gt; figure déjà à la ligne 3"  # escaped, then French
        nested = N_("line %(line)s: %(reason)s", line=2, reason=N_("the signature is empty"))
        assert environment().from_string("{{ s|tr }}").render(s=nested) == "ligne 2 : la signature est vide"
        assert environment().from_string("{{ s|tr }}").render(s="<i>plain</i>") == "&lt;i&gt;plain&lt;/i&gt;"
        percent = N_("Give a share between 1 and 100 %%.")  # a literal "%" in a sentence without parameters
        assert percent == "Give a share between 1 and 100 %." and "%%" not in percent.in_language(lambda m: m)
        broken = Sentence("%(a)s left", a=1)  # a translation naming another parameter: English, never a 500
        assert broken.in_language(lambda m: "%(a)s et %(b)s partis") == "1 left"
    finally:
        use_language("en")


@pytest.fixture
def demo(db, settings):
    with Session(db) as s:
        seed_demo(s, settings)
        s.commit()
    logins = {line.split()[0]: line.split() for line in (settings.data_dir / DEMO_LOGINS_FILE).read_text().splitlines()}
    return create_app(settings=settings, engine=db), logins


FR = {"Accept-Language": "fr"}


def _no_english(response, fragments: set[str]) -> None:
    text = html.unescape(response.text)
    found = sorted(f for f in fragments if f in text)
    assert found == [], found
    assert '<html lang="fr">' in response.text or "<html" not in response.text  # a page, or an htmx fragment


def test_error_paths_in_french_show_no_english_sentence(demo, db, settings):
    app, logins = demo
    fragments = _english_fragments()
    admin = signed_in_client(app, logins["admin"][1], logins["admin"][2])
    token = csrf_of(admin.get("/app/directory/import").text)

    # directory import: a header without an email column, then rows with problems (a table of reasons)
    header = admin.post("/app/directory/import", data={"csrf": token}, headers=FR,
                        files={"file": ("p.csv", b"name;office\nAna;Paris\n", "text/csv")})  # fmt: skip
    assert header.status_code == 422 and "n'a pas de colonne e-mail" in html.unescape(header.text)
    _no_english(header, fragments)
    rows = admin.post("/app/directory/import", data={"csrf": token}, headers=FR,
                      files={"file": ("p.csv", b"email,photo_url\nnot-an-email,\nb@x.example,http://x/p.png\n"
                                      b"b@x.example,\n", "text/csv")})  # fmt: skip
    text = html.unescape(rows.text)
    assert rows.status_code == 422 and "n'est pas une adresse e-mail" in text and "doit être une URL https://" in text
    assert "figure déjà à la ligne" in text
    _no_english(rows, fragments)

    # connections: a Microsoft form with a bad tenant id
    saved = admin.post("/app/connections/microsoft", headers=FR,
                       data={"csrf": token, "tenant_id": "not a tenant", "client_id": "x"})  # fmt: skip
    assert saved.status_code == 422 and "config.tenant_id doit être" in html.unescape(saved.text)
    _no_english(saved, fragments)

    # template lint: a source with what mail clients drop
    from signatures.models import SignatureTemplate

    with Session(db) as s:
        template_id = s.exec(select(SignatureTemplate.id)).first()
    source = '<div class="x" style="display:flex"><img src="http://cdn.example/logo.svg"><a href="http://a.example">a</a></div>'
    lint = admin.post(
        f"/app/templates/{template_id}/check", data={"source": source}, headers={**FR, "X-CSRF-Token": token}
    )
    text = html.unescape(lint.text)
    assert (
        lint.status_code == 200
        and "flexbox n'est pris en charge ni par Outlook" in text
        and "une image n'a pas d'alt" in text
    )
    _no_english(lint, fragments)
    broken = admin.post(f"/app/templates/{template_id}/check", data={"source": "{% include 'x' %}"},
                        headers={**FR, "X-CSRF-Token": token})  # fmt: skip
    assert "ne sont pas disponibles dans les modèles de signature" in html.unescape(broken.text)
    _no_english(broken, fragments)

    # campaigns: ends before it starts; a destination that is not http(s)
    from signatures.campaigns.models import BannerImage

    with Session(db) as s:
        banner_id = s.exec(select(BannerImage.id)).first()
    form = {"csrf": token, "name": "Autumn", "destination_url": "https://a.example", "starts_at": "2026-09-10T09:00",
            "ends_at": "2026-09-01T09:00", "state": "draft", "v-0-banner_id": str(banner_id), "v-0-alt": "Autumn",
            "v-0-share": "100", "everyone": "on"}  # fmt: skip
    dates = admin.post("/app/campaigns/new", data=form, headers=FR)
    assert dates.status_code == 422 and "La campagne doit finir après son début" in html.unescape(dates.text)
    _no_english(dates, fragments)
    url = admin.post("/app/campaigns/new", data={**form, "ends_at": "", "destination_url": "ftp://x"}, headers=FR)
    assert url.status_code == 422 and "doit être une URL absolue http://" in html.unescape(url.text)
    _no_english(url, fragments)
    place = admin.post("/app/campaigns/new", data={**form, "ends_at": "", "everyone": "", "departments": "Nowhere"},
                       headers=FR)  # fmt: skip
    assert place.status_code == 422 and "cela toucherait donc 0 personne" in html.unescape(place.text)
    _no_english(place, fragments)

    # directory sync: no connection to sync from
    sync = admin.post("/app/directory/sync", data={"csrf": token, "provider": "google"}, headers=FR)
    assert sync.status_code == 409 and "depuis laquelle synchroniser" in html.unescape(sync.text)
    _no_english(sync, fragments)

    # the add-in page's readiness sentences
    addin = admin.get("/app/addin", headers=FR)
    assert "Aucun ID d'application Entra n'est défini" in html.unescape(addin.text)
    _no_english(addin, fragments)

    # the API keeps English: the same import refused over the API
    from service.auth import create_api_key
    from service.models import ApiKey, Role

    with Session(db) as s:
        org_id = s.exec(select(ApiKey.org_id)).first()
        key = create_api_key(s, org_id=org_id, name="it", role=Role.it)[1]
        s.commit()
    api = admin.post("/api/directory/import", headers={**FR, "Authorization": f"Bearer {key}"},
                     files={"file": ("p.csv", b"name;office\nAna;Paris\n", "text/csv")})  # fmt: skip
    assert api.status_code == 422 and "has no email column" in api.json()["error"]["message"]


def test_connection_checks_and_a_failed_sync_in_french(demo, db, settings):
    app, logins = demo
    fragments = _english_fragments()
    admin = signed_in_client(app, logins["admin"][1], logins["admin"][2])
    token = csrf_of(admin.get("/app/connections").text)
    with fake_google() as fake:
        fake.add_user("admin@example.com", admin=True)
        settings.google_api_endpoint, settings.google_token_uri = fake.url, fake.token_uri
        info = fake.service_account_info()
        form = {"csrf": token, "admin_subject": "admin@example.com", "secret": json.dumps(info)}
        saved = admin.post("/app/connections/google", follow_redirects=False, data=form)
        assert saved.status_code == 303, saved.text
        fake.revoke_delegation(info["client_id"])
        checks = admin.post("/app/connections/google/test", headers={**FR, "X-CSRF-Token": token})
        text = html.unescape(checks.text)
        assert checks.status_code == 200 and "Délégation au niveau du domaine" in text, text[-2000:]
        _no_english(checks, fragments | {"Domain-wide delegation is not granted"})
        run = admin.post("/app/directory/sync", data={"csrf": token, "provider": "google"}, follow_redirects=False)
        assert run.status_code == 303
    from service.directory.runs import run_sync

    with Session(db) as s:
        sync_id = s.exec(select(DirectorySync.id)).one()
    with fake_google() as fake:  # delegation revoked: the sync fails and says what to change
        settings.google_api_endpoint, settings.google_token_uri = fake.url, fake.token_uri
        run_sync(db, settings, sync_id)
    page = admin.get(f"/app/directory/sync/{sync_id}", headers=FR)
    assert "La synchronisation a échoué." in page.text
    _no_english(page, fragments)
