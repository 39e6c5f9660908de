"""People from the Google Workspace Directory (Admin SDK), acting as the connection's admin subject.

* `users.list(customer, projection=full, query="isSuspended=false")`, 500 a page; archived users and users
  without a Gmail mailbox (`isMailboxSetup` false) are skipped with the reason (suspended ones are filtered
  by the query, and skipped if one slips through).
* Mapping: name → first/last/display name; the primary organization (or the first) → title and
  department; `phones` of type work → phone, mobile → mobile; office → the primary `locations[]` entry's
  buildingId (or area) when the directory has one, else the last segment of `orgUnitPath` (Google has no
  office field; the org unit is usually the site or team); aliases → aliases.
* Groups: `groups.list` then `members.list(includeDerivedMembership=True)` per group; each person gets the
  email of every group they belong to, directly or through a nested group.
* Transient errors (429, rate-limit 403, 5xx, dropped connections) are retried with the deployment's
  shared policy, honouring Retry-After; a wait longer than `RELAIS_DEPLOY_DEFER_AFTER_MINUTES` stops the sync
  with a sentence (`SyncError`, 502), as does a failure that outlasts the budget; a configuration problem is a
  422 naming what to change (the same sentences as the connection test and deployments: `explain`).
"""

from __future__ import annotations

from service.connections.errors import TransientError
from service.connections.google import GoogleClient
from service.connections.throttle import Deferred, GaveUp, RetryPolicy, call_with_retry
from service.directory.sync import DirectoryPerson, Listing, Skipped, SyncError
from service.settings import Settings


class DirectoryError(SyncError):
    """Google's directory could not be read; the message says why (and what to change, when that is known)."""


def sync_policy(settings: Settings) -> RetryPolicy:
    """List pages are retried as deployment writes are: the same time budget, the same bound on Retry-After."""
    return RetryPolicy(
        budget_seconds=settings.deploy_retry_minutes * 60, defer_after=settings.deploy_defer_after_minutes * 60
    )


class GoogleDirectory:
    source = "google"

    def __init__(
        self, client: GoogleClient, *, policy: RetryPolicy | None = None, page_size: int = 500, with_groups: bool = True
    ):
        self.client = client
        self.policy = policy or RetryPolicy()
        self.page_size = page_size
        self.with_groups = with_groups

    @classmethod
    def from_connection(cls, conn, settings: Settings) -> GoogleDirectory:
        return cls(GoogleClient.from_connection(conn, settings), policy=sync_policy(settings))

    # ------------------------------------------------------------------ calls

    def _call(self, make_request) -> dict:
        subject = self.client.admin_subject

        def attempt() -> dict:
            try:
                return self.client.execute(make_request(), subject=subject, kind="directory")
            except Exception as exc:  # noqa: BLE001 - classified below
                problem = self.client.explain(exc, subject=subject, kind="directory")
                if problem.kind == "transient":
                    raise TransientError(
                        problem.message, problem.retry_after, throttled=problem.throttled, code=problem.reason,
                        service="Google's Directory API",
                    ) from exc  # fmt: skip
                if problem.kind == "configuration":
                    raise DirectoryError(problem.message, status_code=422) from exc
                raise DirectoryError(problem.message) from exc

        try:
            return call_with_retry(attempt, policy=self.policy)
        except Deferred as exc:
            raise DirectoryError(f"{exc.message}; the sync stopped, run it again then.") from exc
        except GaveUp as exc:
            raise DirectoryError(f"Google Directory kept failing: {exc.last.message}") from exc

    def _pages(self, make_request, key: str):
        token = None
        while True:
            page = self._call(lambda token=token: make_request(token))
            yield from page.get(key, [])
            token = page.get("nextPageToken")
            if not token:
                return

    # ------------------------------------------------------------------ listing

    def list_people(self) -> Listing:
        api = self.client.service("directory")
        customer = self.client.customer_id
        users = self._pages(
            lambda token: api.users().list(
                customer=customer,
                projection="full",
                query="isSuspended=false",
                maxResults=self.page_size,
                pageToken=token,
            ),
            "users",
        )
        listing = Listing()
        kept: list[dict] = []
        for user in users:
            email = user.get("primaryEmail", "")
            if user.get("archived"):
                listing.skipped.append(Skipped(email, "archived user"))
            elif user.get("suspended"):
                listing.skipped.append(Skipped(email, "suspended user"))
            elif user.get("isMailboxSetup") is False:
                listing.skipped.append(Skipped(email, "no Gmail mailbox (isMailboxSetup is false)"))
            else:
                kept.append(user)
        groups = self._groups() if self.with_groups else {}
        listing.people = [
            to_person(u, groups.get(u.get("id", "")) or groups.get(u["primaryEmail"].lower()) or ()) for u in kept
        ]
        return listing

    def _groups(self) -> dict[str, tuple[str, ...]]:
        """user id and lower-cased email -> the group emails they belong to (directly or by nesting)."""
        api = self.client.service("directory")
        customer = self.client.customer_id
        member_of: dict[str, set[str]] = {}
        for group in self._pages(
            lambda token: api.groups().list(customer=customer, maxResults=200, pageToken=token), "groups"
        ):
            key = group["email"]
            members = self._pages(
                lambda token, key=key: api.members().list(
                    groupKey=key, includeDerivedMembership=True, maxResults=200, pageToken=token
                ),
                "members",
            )
            for member in members:
                if member.get("type", "USER") != "USER":
                    continue
                for ref in {member.get("id"), (member.get("email") or "").lower()} - {None, ""}:
                    member_of.setdefault(ref, set()).add(key.lower())
        return {ref: tuple(sorted(keys)) for ref, keys in member_of.items()}


def _primary(items: list[dict] | None) -> dict:
    items = items or []
    return next((i for i in items if i.get("primary")), items[0] if items else {})


def _phone(phones: list[dict] | None, kind: str) -> str | None:
    for phone in phones or []:
        if phone.get("type") == kind and phone.get("value"):
            return phone["value"]
    return None


def office_of(user: dict) -> str | None:
    location = _primary(user.get("locations"))
    if location.get("buildingId") or location.get("area"):
        return location.get("buildingId") or location.get("area")
    path = (user.get("orgUnitPath") or "/").rstrip("/")
    return path.rsplit("/", 1)[-1] or None


def to_person(user: dict, groups: tuple[str, ...] = ()) -> DirectoryPerson:
    name = user.get("name") or {}
    org = _primary(user.get("organizations"))
    email = user["primaryEmail"]
    aliases = tuple(a for a in (user.get("aliases") or []) if a.lower() != email.lower())
    return DirectoryPerson(
        source_id=str(user.get("id") or email), email=email, first_name=name.get("givenName") or None,
        last_name=name.get("familyName") or None, display_name=name.get("fullName") or None,
        title=org.get("title") or None, department=org.get("department") or None, office=office_of(user),
        location=org.get("location") or None,
        phone=_phone(user.get("phones"), "work"), mobile=_phone(user.get("phones"), "mobile"),
        manager_email=next((r.get("value") for r in user.get("relations") or [] if r.get("type") == "manager"), None),
        aliases=aliases, groups=tuple(groups),
    )  # fmt: skip
