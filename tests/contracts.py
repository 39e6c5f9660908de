"""Contract tests every `SignatureTarget` and every `Directory` implementation must pass.

Subclass a contract in a test module and override its one fixture:

    class TestFileTarget(SignatureTargetContract):
        @pytest.fixture
        def make_target(self, tmp_path) -> TargetHarness:
            return FileHarness(tmp_path)

A harness wraps the implementation with the two things only the provider's side can do: provision a
mailbox (with aliases) and count the writes the provider received. Likewise a `DirectoryHarness` adds
people (and their groups) at the source, then builds the `Directory` that reads them.
"""

from __future__ import annotations

import uuid
from typing import Protocol

import pytest

from service.connections.throttle import RetryPolicy
from service.directory.sync import Directory, Listing
from signatures.deploy import engine as deploy_engine
from signatures.deploy.targets.base import MailboxSignature, Outcome, SignatureTarget

FAST = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.05)


class TargetHarness(Protocol):
    target: SignatureTarget

    def provision(self, mailbox: str, aliases: tuple[str, ...] = ()) -> None:
        """Create the mailbox (and its aliases as send-as addresses) at the provider."""

    def provider_writes(self) -> int:
        """Signature writes the provider has received so far (every address written counts one)."""

    def unknown_mailbox(self) -> str | None:
        """An address the provider has no mailbox for; None when the target accepts any address (a folder)."""


def signature(
    mailbox: str, addresses: tuple[str, ...] | None = None, *, html: str | None = None, verify_first: bool = False
) -> MailboxSignature:
    html = html or f"<table><tr><td><b>{mailbox}</b> · Relais {uuid.uuid4().hex[:8]}</td></tr></table>"
    return MailboxSignature(
        mailbox=mailbox,
        addresses=addresses or (mailbox,),
        html=html,
        text=f"{mailbox}\n",
        reply_html=f"<b>{mailbox}</b>",
        reply_text=mailbox,
        content_hash=uuid.uuid4().hex,
        verify_first=verify_first,
    )


def outcomes(result) -> dict[str, Outcome]:
    return {r.address.lower(): r.outcome for r in result.results}


class SignatureTargetContract:
    """The behaviour the deployment engine relies on, for any target."""

    @pytest.fixture
    def make_target(self) -> TargetHarness:
        raise NotImplementedError("override make_target in the subclass")

    def test_provider_and_pacing_attributes(self, make_target):
        target = make_target.target
        assert isinstance(target.provider, str) and target.provider
        assert isinstance(target.concurrency, int) and target.concurrency >= 1
        assert target.writes_per_second is None or target.writes_per_second > 0
        assert isinstance(target.check(), list)

    def test_a_written_signature_is_what_current_returns(self, make_target):
        h = make_target
        h.provision("ann.lee@example.com", aliases=("ann@example.com",))
        sig = signature("ann.lee@example.com", ("ann.lee@example.com", "ann@example.com"))
        before = h.provider_writes()
        result = h.target.write(sig)
        assert outcomes(result) == {"ann.lee@example.com": Outcome.applied, "ann@example.com": Outcome.applied}
        assert result.writes == h.provider_writes() - before >= 1
        current = {k.lower(): v for k, v in h.target.current("ann.lee@example.com").items()}
        assert current["ann.lee@example.com"] == sig.html

    def test_writing_the_same_again_is_unchanged_without_a_provider_write(self, make_target):
        h = make_target
        h.provision("bob.stone@example.com", aliases=("bob@example.com",))
        sig = signature("bob.stone@example.com", ("bob.stone@example.com", "bob@example.com"))
        h.target.write(sig)
        before = h.provider_writes()
        again = h.target.write(sig)
        assert set(outcomes(again).values()) == {Outcome.unchanged}
        assert again.writes == 0 and h.provider_writes() == before

    def test_a_changed_signature_is_written_again(self, make_target):
        h = make_target
        h.provision("cy.park@example.com")
        h.target.write(signature("cy.park@example.com"))
        newer = signature("cy.park@example.com")
        before = h.provider_writes()
        assert outcomes(h.target.write(newer)) == {"cy.park@example.com": Outcome.applied}
        assert h.provider_writes() == before + 1
        assert {k.lower(): v for k, v in h.target.current("cy.park@example.com").items()}[
            "cy.park@example.com"
        ] == newer.html

    def test_an_unknown_mailbox_is_skipped_with_a_reason(self, make_target):
        h = make_target
        unknown = h.unknown_mailbox()
        if unknown is None:  # a folder target: every address is a valid destination
            result = deploy_engine.write_with_retries(h.target, signature("new.person@example.com"), FAST)
            assert outcomes(result) == {"new.person@example.com": Outcome.applied}
            return
        before = h.provider_writes()
        result = deploy_engine.write_with_retries(h.target, signature(unknown), FAST)
        assert [r.outcome for r in result.results] == [Outcome.skipped]
        assert len(result.results[0].reason) > 10, "a skip must say why"
        assert h.provider_writes() == before

    def test_verify_first_never_writes_an_address_that_already_carries_the_html(self, make_target):
        h = make_target
        h.provision("dee.ross@example.com", aliases=("dee@example.com",))
        sig = signature("dee.ross@example.com", ("dee.ross@example.com",))
        h.target.write(sig)  # an earlier worker wrote the primary address, then died
        resumed = signature(
            "dee.ross@example.com", ("dee.ross@example.com", "dee@example.com"), html=sig.html, verify_first=True
        )
        before = h.provider_writes()
        result = h.target.write(resumed)
        assert outcomes(result) == {"dee.ross@example.com": Outcome.unchanged, "dee@example.com": Outcome.applied}
        assert h.provider_writes() == before + 1 and result.writes == 1
        again = h.target.write(resumed)
        assert set(outcomes(again).values()) == {Outcome.unchanged} and h.provider_writes() == before + 1


# ------------------------------------------------------------------------------------------------ directories


class DirectoryHarness(Protocol):
    source: str

    def add_person(
        self,
        email: str,
        *,
        first_name: str,
        last_name: str,
        title: str | None = None,
        department: str | None = None,
        aliases: tuple[str, ...] = (),
        groups: tuple[str, ...] = (),
    ) -> None:
        """Add a person at the source (groups: the group keys they belong to)."""

    def directory(self) -> Directory:
        """The directory over what was added so far."""


class DirectoryContract:
    @pytest.fixture
    def make_directory(self) -> DirectoryHarness:
        raise NotImplementedError("override make_directory in the subclass")

    def _seed(self, h: DirectoryHarness) -> None:
        h.add_person(
            "ann.lee@example.com",
            first_name="Ann",
            last_name="Lee",
            title="Engineer",
            department="R&D",
            aliases=("ann@example.com",),
            groups=("engineering@example.com",),
        )
        h.add_person(
            "bob.stone@example.com",
            first_name="Bob",
            last_name="Stone",
            title="Account Executive",
            department="Sales",
            groups=("sales@example.com", "engineering@example.com"),
        )
        h.add_person("cy.park@example.com", first_name="Cy", last_name="Park")

    def _listed(self, h: DirectoryHarness) -> tuple[Listing, dict]:
        listing = h.directory().list_people()
        return listing, {p.email.lower(): p for p in listing.people}

    def test_people_and_their_profile_fields(self, make_directory):
        h = make_directory
        self._seed(h)
        listing, people = self._listed(h)
        assert h.directory().source == h.source
        assert {"ann.lee@example.com", "bob.stone@example.com", "cy.park@example.com"} <= set(people)
        ann = people["ann.lee@example.com"]
        assert (ann.first_name, ann.last_name, ann.title, ann.department) == ("Ann", "Lee", "Engineer", "R&D")
        assert tuple(a.lower() for a in ann.aliases) == ("ann@example.com",)
        assert people["cy.park@example.com"].title is None and people["cy.park@example.com"].aliases == ()
        assert listing.complete is True

    def test_groups_are_on_each_person(self, make_directory):
        h = make_directory
        self._seed(h)
        _listing, people = self._listed(h)
        assert {g.lower() for g in people["ann.lee@example.com"].groups} == {"engineering@example.com"}
        assert {g.lower() for g in people["bob.stone@example.com"].groups} == {
            "sales@example.com",
            "engineering@example.com",
        }
        assert people["cy.park@example.com"].groups == ()

    def test_source_ids_are_stable_and_unique(self, make_directory):
        h = make_directory
        self._seed(h)
        first = {p.email: p.source_id for p in self._listed(h)[0].people}
        second = {p.email: p.source_id for p in self._listed(h)[0].people}
        assert first == second and len(set(first.values())) == len(first) and all(first.values())
