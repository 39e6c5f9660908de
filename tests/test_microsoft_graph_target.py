"""Microsoft 365 through Graph `userConfiguration` (OWA.UserOptions, beta): the shared target contract and real
deployments (engine, msal, httpx) against the local fake, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session, select

from service.connections.microsoft import validate
from service.connections.throttle import RetryPolicy
from service.db import session_scope
from service.directory.sync import DirectoryPerson, Listing, apply_listing
from service.errors import Invalid
from signatures.deploy import engine as deploy_engine
from signatures.deploy.models import Deployment, DeploymentItem, SignatureState
from signatures.deploy.registry import make_target
from signatures.deploy.targets.base import MailboxSignature, Outcome
from signatures.deploy.targets.microsoft import MicrosoftTarget
from signatures.deploy.targets.microsoft_graph import GraphUserConfigTarget, merge, signature_entries
from tests.contracts import SignatureTargetContract, outcomes, signature
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, client_for, connect, connection, default_template, ms_settings

FAST = RetryPolicy(max_attempts=6, base_delay=0.01, max_delay=0.05)
OTHER_OPTIONS = {"timezone": "Romance Standard Time", "isDarkModeTheme": True}
GRAPH = {"write_via": "graph"}


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        yield f
        assert f.errors == []


@pytest.fixture
def mss(settings, fake):
    return ms_settings(settings, fake, ms_concurrency=4)


def graph_writes(fake: FakeMicrosoft, mailbox: str | None = None) -> list:
    return [w for w in fake.writes if w.via == "graph" and (mailbox is None or w.mailbox == mailbox)]


def config_requests(fake: FakeMicrosoft, method: str, **kw) -> int:
    return fake.request_count("graph", method=method, path_contains="/userConfigurations", **kw)


# ------------------------------------------------------------------------------------------------ contract


class GraphHarness:
    def __init__(self, fake: FakeMicrosoft, settings):
        self.fake = fake
        self.target = GraphUserConfigTarget(client_for(fake, settings), concurrency=4)

    def provision(self, mailbox, aliases=()):
        self.fake.add_user(mailbox, proxyAddresses=[f"SMTP:{mailbox}", *(f"smtp:{a}" for a in aliases)])

    def provider_writes(self) -> int:
        return len(graph_writes(self.fake))

    def unknown_mailbox(self):
        return "nobody@example.com"


class TestGraphUserConfigTargetContract(SignatureTargetContract):
    @pytest.fixture
    def make_target(self, fake, settings):
        return GraphHarness(fake, settings)

    def test_verify_first_never_writes_an_address_that_already_carries_the_html(self, make_target):
        """OWA.UserOptions holds ONE signature per mailbox, shared by its aliases (as with Exchange): a mailbox that
        already carries the HTML is unchanged for every address, with no write at all."""
        h = make_target
        h.provision("dee.ross@example.com", aliases=("dee@example.com",))
        sig = signature("dee.ross@example.com", ("dee.ross@example.com",))
        h.target.write(sig)  # an earlier worker wrote the mailbox, then died
        resumed = signature("dee.ross@example.com", ("dee.ross@example.com", "dee@example.com"), html=sig.html,
                            verify_first=True)  # fmt: skip
        before = h.provider_writes()
        result = h.target.write(resumed)
        assert outcomes(result) == {"dee.ross@example.com": Outcome.unchanged, "dee@example.com": Outcome.unchanged}
        assert h.provider_writes() == before and result.writes == 0


# ------------------------------------------------------------------------------------------------ merge


def test_merge_keeps_every_other_entry_verbatim_and_replaces_ours_in_place():
    odd = {"keyEntry": {"type": "string", "values": ["weird"]}, "valueEntry": {"type": "stringArray",
                                                                             "values": ["a", "b"]}}  # fmt: skip
    old_sig = {"keyEntry": {"type": "string", "values": ["SignatureHtml"]},
               "valueEntry": {"type": "string", "values": ["<p>old</p>"]}}  # fmt: skip
    sig = MailboxSignature(mailbox="a@x.example", addresses=("a@x.example",), html="<p>new</p>", text="new",
                           reply_html="", reply_text="", content_hash="h")  # fmt: skip
    merged = merge([odd, old_sig], signature_entries(sig))
    assert merged[0] == odd  # untouched, even a type Relais never writes
    assert merged[1]["keyEntry"]["values"] == ["signaturehtml"]
    assert merged[1]["valueEntry"] == {"type": "string", "values": ["<p>new</p>"]}
    keys = [e["keyEntry"]["values"][0] for e in merged]
    assert keys == ["weird", "signaturehtml", "signaturetext", "autoaddsignature", "autoaddsignatureonreply"]
    assert merged[3]["valueEntry"] == {"type": "boolean", "values": ["true"]}


# ------------------------------------------------------------------------------------------------ deployments


def seed(db, tenant, emails: list[str]) -> None:
    listing = Listing(people=[DirectoryPerson(source_id=f"id-{e}", email=e, first_name=e.split("@")[0],
                                              last_name="Test", title="Engineer") for e in emails])  # fmt: skip
    with session_scope(db) as s:
        apply_listing(s, org_id=tenant.org_id, source="microsoft", listing=listing, dry_run=False)
    default_template(db, tenant.org_id)


def people(fake: FakeMicrosoft, count: int, *, owa_options: dict | None = OTHER_OPTIONS) -> list[str]:
    emails = [f"user{i}@contoso.example" for i in range(count)]
    for i, email in enumerate(emails):
        fake.add_user(email, display_name=f"User {i}", jobTitle="Engineer", owa_options=owa_options)
    return emails


def deploy(db, tenant, mss, *, dry_run=False) -> Deployment:
    """Through the real provider selection: the connection's write_via picks the Graph target."""
    with session_scope(db) as s:
        dep_id = deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="microsoft",
                                                 dry_run=dry_run).id  # fmt: skip
    return deploy_engine.execute(db, dep_id, make_target=lambda s, d: make_target(s, d, mss), policy=FAST)


def items(db, dep_id) -> dict[str, DeploymentItem]:
    with Session(db) as s:
        rows = s.exec(select(DeploymentItem).where(DeploymentItem.deployment_id == dep_id)).all()
        return {i.mailbox: i for i in rows}


def test_write_via_graph_is_selected_from_the_connection(db, tenant, fake, mss):
    graph_conn = connect(db, tenant.org_id, fake, mss, config=GRAPH)
    with session_scope(db) as s:
        dep = deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="microsoft", dry_run=True)
        assert type(make_target(s, dep, mss)) is GraphUserConfigTarget
    row = connection(db, graph_conn)
    assert validate(config=row.config, secret=None)["write_via"] == "graph"
    assert "write_via" not in validate(config={"tenant_id": TENANT, "client_id": TENANT}, secret=None)
    with pytest.raises(Invalid, match="write_via"):
        validate(config={"tenant_id": TENANT, "client_id": TENANT, "write_via": "smtp"}, secret=None)


def test_exchange_stays_the_default(db, tenant, fake, mss):
    connect(db, tenant.org_id, fake, mss)
    with session_scope(db) as s:
        dep = deploy_engine.create_deployment(s, org_id=tenant.org_id, provider="microsoft", dry_run=True)
        assert type(make_target(s, dep, mss)) is MicrosoftTarget


def test_other_owa_options_survive_and_a_second_deployment_writes_nothing(db, tenant, fake, mss):
    emails = people(fake, 4)
    seed(db, tenant, emails)
    conn_id = connect(db, tenant.org_id, fake, mss, config=GRAPH)

    dry = deploy(db, tenant, mss, dry_run=True)
    assert dry.status == "done", dry.message
    assert fake.writes == [] and config_requests(fake, "PATCH") == 0

    dep = deploy(db, tenant, mss)
    assert dep.status == "done", dep.message
    assert dep.counts == {"applied": 4} and dep.writes == 4
    rows = items(db, dep.id)
    for email in emails:
        options = fake.user_configuration(email)
        assert options["timezone"] == "Romance Standard Time" and options["isDarkModeTheme"] is True
        assert options["signaturehtml"] == rows[email].html and options["signaturetext"] == rows[email].text
        assert options["autoaddsignature"] is True and options["autoaddsignatureonreply"] is True
        assert fake.visible_signature(email) == rows[email].html
    assert len(graph_writes(fake)) == 4 and all(w.applied for w in fake.writes)
    assert fake.request_count("exchange", cmdlet="Set-MailboxMessageConfiguration") == 0
    assert config_requests(fake, "POST") == 0  # the items existed: merged and PATCHed, not recreated

    # Read-back for verification and diffs.
    target = GraphUserConfigTarget.from_connection(connection(db, conn_id), mss)
    assert target.current(emails[1]) == {emails[1]: rows[emails[1]].html}

    patches = config_requests(fake, "PATCH")
    again = deploy(db, tenant, mss)
    assert again.status == "done" and again.counts == {"unchanged": 4} and again.writes == 0
    assert len(graph_writes(fake)) == 4 and config_requests(fake, "PATCH") == patches
    assert fake.user_configuration(emails[0])["timezone"] == "Romance Standard Time"


def test_absent_configuration_is_created(db, tenant, fake, mss):
    emails = people(fake, 2, owa_options=None)
    seed(db, tenant, emails)
    connect(db, tenant.org_id, fake, mss, config=GRAPH)
    assert fake.user_configuration(emails[0]) is None

    dep = deploy(db, tenant, mss)
    assert dep.status == "done" and dep.counts == {"applied": 2}, dep.message
    rows = items(db, dep.id)
    for email in emails:
        assert fake.user_configuration(email) == {"signaturehtml": rows[email].html,
                                                  "signaturetext": rows[email].text, "autoaddsignature": True,
                                                  "autoaddsignatureonreply": True}  # fmt: skip
    assert config_requests(fake, "POST", status=201) == 2 and config_requests(fake, "PATCH") == 0
    assert config_requests(fake, "GET", status=404) >= 2  # read first: absent, then created


def test_roaming_on_fails_the_deployment_and_nothing_is_applied(db, tenant, fake, mss):
    fake.set_roaming(True)
    emails = people(fake, 3)
    seed(db, tenant, emails)
    connect(db, tenant.org_id, fake, mss, config=GRAPH)

    dep = deploy(db, tenant, mss)
    assert dep.status == "failed" and "Roaming signatures are ON" in dep.message
    assert "PostponeRoamingSignaturesUntilLater $true" in dep.message and "add-in" in dep.message
    assert "applied" not in dep.counts and dep.writes == 0
    assert fake.writes == [] and config_requests(fake, "PATCH") == config_requests(fake, "POST") == 0
    assert {i.outcome for i in items(db, dep.id).values()} == {None}
    with Session(db) as s:
        assert s.exec(select(SignatureState)).all() == []
    assert fake.user_configuration(emails[0]) == OTHER_OPTIONS


def test_throttling_with_decimal_retry_after_is_applied_eventually(db, tenant, fake, mss):
    emails = people(fake, 3)
    seed(db, tenant, emails)
    connect(db, tenant.org_id, fake, mss, config=GRAPH)
    fake.inject(429, service="graph", method="PATCH", mailbox=emails[0], retry_after="0.35", times=2)
    fake.inject(503, service="graph", method="GET", mailbox=emails[1], retry_after="0.1", times=1)
    fake.inject(429, service="graph", method="GET", mailbox=emails[2], times=1)  # no header: backoff

    dep = deploy(db, tenant, mss)
    assert dep.status == "done" and dep.counts == {"applied": 3}, dep.message
    assert config_requests(fake, "PATCH", status=429) == 2
    assert len(graph_writes(fake, emails[0])) == 1  # written once, after the two refusals
    patches = [r.at for r in fake.requests if r.method == "PATCH" and r.mailbox == emails[0]]
    assert len(patches) == 3
    assert all(b - a >= 0.35 for a, b in zip(patches, patches[1:], strict=False))  # the decimal delay was honoured
    assert {i.attempts for i in items(db, dep.id).values()} == {1}  # retries live inside one attempt
    assert all(fake.user_configuration(e)["timezone"] == "Romance Standard Time" for e in emails)


def test_unknown_user_is_skipped_with_a_reason(db, tenant, fake, mss):
    emails = people(fake, 2)
    seed(db, tenant, [*emails, "ghost@contoso.example"])
    connect(db, tenant.org_id, fake, mss, config=GRAPH)
    dep = deploy(db, tenant, mss)
    assert dep.status == "done" and dep.counts == {"applied": 2, "skipped": 1}, dep.message
    ghost = items(db, dep.id)["ghost@contoso.example"]
    assert ghost.outcome == "skipped" and "No Exchange Online mailbox for ghost@contoso.example" in ghost.reason
    assert graph_writes(fake, "ghost@contoso.example") == []


def test_missing_mailbox_config_permission_stops_the_deployment(db, tenant, fake, mss):
    emails = people(fake, 3)
    seed(db, tenant, emails)
    app = fake.register_app(secret="a-long-enough-secret", graph_roles=["User.Read.All"],
                            exchange_roles=["Exchange.ManageAsApp"])  # fmt: skip
    connect(db, tenant.org_id, fake, mss, secret="a-long-enough-secret", client_id=app.client_id, config=GRAPH)
    dep = deploy(db, tenant, mss)
    assert dep.status == "failed" and "MailboxConfigItem.ReadWrite" in dep.message
    assert fake.writes == [] and "applied" not in dep.counts
    assert config_requests(fake, "GET", status=403) <= 4  # stopped once, not once per mailbox


def test_rejected_graph_token_is_a_configuration_error(db, tenant, fake, mss):
    emails = people(fake, 2)
    seed(db, tenant, emails)
    connect(db, tenant.org_id, fake, mss, config=GRAPH)
    fake.inject(401, service="graph", path_contains="/userConfigurations", times=None)
    dep = deploy(db, tenant, mss)
    assert dep.status == "failed" and "token" in dep.message and "MailboxConfigItem.ReadWrite" in dep.message
    assert fake.writes == []


def test_at_most_four_requests_in_flight_per_mailbox(db, tenant, fake, mss):
    (email,) = people(fake, 1, owa_options=None)  # absent: concurrent creates meet 409 and merge instead
    conn_id = connect(db, tenant.org_id, fake, mss, config=GRAPH)
    fake.set_latency(0.15, "graph")
    target = GraphUserConfigTarget.from_connection(connection(db, conn_id), mss)
    target.check()
    sigs = [MailboxSignature(mailbox=email, addresses=(email,), html=f"<p>v{i}</p>", text=f"v{i}", reply_html="",
                             reply_text="", content_hash=str(i)) for i in range(10)]  # fmt: skip
    results: list = []
    threads = [threading.Thread(target=lambda s=s: results.append(target.write(s))) for s in sigs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.max_concurrency_seen[email] == 4  # the limit was reached, never exceeded
    assert fake.concurrency_rejections.get(email, 0) == 0
    assert len(results) == 10 and {outcomes(r)[email] for r in results} == {Outcome.applied}
    assert len(graph_writes(fake, email)) == 10
    assert fake.user_configuration(email)["signaturehtml"] in {s.html for s in sigs}


def test_item_created_between_read_and_create_is_merged_not_replaced(fake, settings):
    """Our GET finds no OWA.UserOptions, but the item exists by the time we POST (the user opened Outlook on the
    web meanwhile): the 409 leads to a fresh read and a merge, so the options it gained survive."""
    (email,) = people(fake, 1)
    fake.inject(
        404,
        service="graph",
        method="GET",
        mailbox=email,
        times=1,
        body={"error": {"code": "ErrorItemNotFound", "message": "The specified object was not found."}},
    )
    target = GraphUserConfigTarget(client_for(fake, ms_settings(settings, fake)), concurrency=1)
    sig = signature(email)
    assert outcomes(target.write(sig)) == {email: Outcome.applied}
    assert config_requests(fake, "POST", status=409) == 1 and config_requests(fake, "PATCH", status=200) == 1
    assert fake.user_configuration(email) == {
        **OTHER_OPTIONS,
        "signaturehtml": sig.html,
        "signaturetext": sig.text,
        "autoaddsignature": True,
        "autoaddsignatureonreply": True,
    }
    assert target.current(email) == {email: sig.html}
