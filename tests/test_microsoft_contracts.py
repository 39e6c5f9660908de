"""The shared target and directory contracts, run against Microsoft 365 (Exchange admin REST + Graph) via the fake."""

from __future__ import annotations

import pytest

from service.directory.sources.microsoft import GraphDirectory
from signatures.deploy.targets.base import Outcome
from signatures.deploy.targets.microsoft import MicrosoftTarget
from tests.contracts import DirectoryContract, SignatureTargetContract, outcomes, signature
from tests.fakes.microsoft import FakeMicrosoft
from tests.ms_support import TENANT, client_for, ms_settings


@pytest.fixture
def fake():
    with FakeMicrosoft(tenant_id=TENANT) as f:
        yield f
        assert f.errors == []


class ExchangeHarness:
    def __init__(self, fake: FakeMicrosoft, settings):
        self.fake = fake
        self.target = MicrosoftTarget(client_for(fake, settings), concurrency=4)

    def provision(self, mailbox, aliases=()):
        self.fake.add_user(mailbox, proxyAddresses=[f"SMTP:{mailbox}", *(f"smtp:{a}" for a in aliases)])

    def provider_writes(self) -> int:
        return len([w for w in self.fake.writes if w.via == "exchange"])

    def unknown_mailbox(self):
        return "nobody@example.com"


class TestMicrosoftTargetContract(SignatureTargetContract):
    @pytest.fixture
    def make_target(self, fake, settings):
        return ExchangeHarness(fake, settings)

    def test_verify_first_never_writes_an_address_that_already_carries_the_html(self, make_target):
        """Exchange keeps ONE signature per mailbox, shared by its aliases (unlike Gmail's per-address send-as):
        a mailbox that already carries the HTML is unchanged for every address, with no write at all."""
        h = make_target
        h.provision("dee.ross@example.com", aliases=("dee@example.com",))
        sig = signature("dee.ross@example.com", ("dee.ross@example.com",))
        h.target.write(sig)  # an earlier worker wrote the mailbox, then died
        resumed = signature(
            "dee.ross@example.com", ("dee.ross@example.com", "dee@example.com"), html=sig.html, verify_first=True
        )
        before = h.provider_writes()
        result = h.target.write(resumed)
        assert outcomes(result) == {"dee.ross@example.com": Outcome.unchanged, "dee@example.com": Outcome.unchanged}
        assert h.provider_writes() == before and result.writes == 0


class GraphDirectoryHarness:
    source = "microsoft"

    def __init__(self, fake: FakeMicrosoft, settings):
        self.fake = fake
        self.settings = ms_settings(settings, fake)
        self.members: dict[str, list[str]] = {}
        self.group_ids: dict[str, str] = {}

    def add_person(self, email, *, first_name, last_name, title=None, department=None, aliases=(), groups=()):
        self.fake.add_user(
            email,
            givenName=first_name,
            surname=last_name,
            jobTitle=title,
            department=department,
            proxyAddresses=[f"SMTP:{email}", *(f"smtp:{a}" for a in aliases)],
        )
        for group in groups:
            self.members.setdefault(group, []).append(email)

    def directory(self):
        for group, members in self.members.items():
            if group not in self.group_ids:
                self.group_ids[group] = self.fake.add_group(group, members)["id"]
        groups = {gid: key for key, gid in self.group_ids.items()}
        return GraphDirectory(client_for(self.fake, self.settings), self.settings, groups=groups)


class TestGraphDirectoryContract(DirectoryContract):
    @pytest.fixture
    def make_directory(self, fake, settings):
        return GraphDirectoryHarness(fake, settings)
