"""The target and directory contracts, run against the folder export, CSV, and Google (through the fake)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from service.connections.google import GoogleClient
from service.directory.sources.csv_file import CsvDirectory
from service.directory.sources.google import GoogleDirectory
from signatures.deploy.targets.files import FileTarget
from signatures.deploy.targets.google import GoogleTarget
from tests.contracts import DirectoryContract, SignatureTargetContract
from tests.fakes.google import FakeGoogle, fake_google

ADMIN = "admin@example.com"


@pytest.fixture
def fake():
    with fake_google() as f:
        f.add_user(ADMIN, admin=True)
        yield f


def google_client(fake: FakeGoogle) -> GoogleClient:
    return GoogleClient(
        info=fake.service_account_info(), admin_subject=ADMIN, api_endpoint=fake.url, token_uri=fake.token_uri
    )


# ------------------------------------------------------------------------------------------------ targets


class FileHarness:
    """The folder is the provider: a write is a new `<address>.html` file (atomic rename, new inode)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.target = FileTarget(folder)
        self.seen: set[tuple[str, int, int]] = set()

    def provision(self, mailbox, aliases=()):
        pass  # a folder needs no mailbox

    def provider_writes(self) -> int:
        for path in self.folder.glob("*.html"):
            if not path.name.endswith(".reply.html"):
                st = path.stat()
                self.seen.add((path.name, st.st_ino, st.st_mtime_ns))
        return len(self.seen)

    def unknown_mailbox(self):
        return None


class TestFileTargetContract(SignatureTargetContract):
    @pytest.fixture
    def make_target(self, tmp_path):
        return FileHarness(tmp_path / "out")


class GoogleHarness:
    def __init__(self, fake: FakeGoogle):
        self.fake = fake
        self.target = GoogleTarget(google_client(fake), concurrency=4, writes_per_second=None)

    def provision(self, mailbox, aliases=()):
        self.fake.add_user(mailbox, aliases=list(aliases))

    def provider_writes(self) -> int:
        return len(self.fake.writes)

    def unknown_mailbox(self):
        return "ghost@example.com"


class TestGoogleTargetContract(SignatureTargetContract):
    @pytest.fixture
    def make_target(self, fake):
        return GoogleHarness(fake)


# ------------------------------------------------------------------------------------------------ directories


class CsvHarness:
    source = "csv"

    def __init__(self):
        self.rows: list[dict] = []

    def add_person(self, email, *, first_name, last_name, title=None, department=None, aliases=(), groups=()):
        self.rows.append(
            {
                "email": email,
                "first_name": first_name,
                "last_name": last_name,
                "title": title or "",
                "department": department or "",
                "aliases": ";".join(aliases),
                "groups": ";".join(groups),
            }
        )

    def directory(self):
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=["email", "first_name", "last_name", "title", "department", "aliases", "groups"]
        )
        writer.writeheader()
        writer.writerows(self.rows)
        return CsvDirectory(out.getvalue().encode())


class TestCsvDirectoryContract(DirectoryContract):
    @pytest.fixture
    def make_directory(self):
        return CsvHarness()


class GoogleDirectoryHarness:
    source = "google"

    def __init__(self, fake: FakeGoogle):
        self.fake = fake
        self.members: dict[str, list[str]] = {}
        self.client = google_client(fake)

    def add_person(self, email, *, first_name, last_name, title=None, department=None, aliases=(), groups=()):
        self.fake.add_user(
            email,
            given_name=first_name,
            family_name=last_name,
            title=title,
            department=department,
            aliases=list(aliases),
        )
        for group in groups:
            self.members.setdefault(group, []).append(email)

    def directory(self):
        for group, members in self.members.items():
            self.fake.add_group(group, members=members)
        return GoogleDirectory(self.client)


class TestGoogleDirectoryContract(DirectoryContract):
    @pytest.fixture
    def make_directory(self, fake):
        return GoogleDirectoryHarness(fake)
