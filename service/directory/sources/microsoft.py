"""Microsoft Graph directory: users (full and incremental), transitive group membership, re-hosted photos.

- Full sync: `GET /v1.0/users` with an explicit `$select` (Graph returns only 11 properties otherwise) and
  `$expand=manager(...)`, following `@odata.nextLink` exactly as given. Before listing, a fresh delta link is
  taken (`/users/delta?$deltatoken=latest`), so changes made during the listing are replayed next time.
- Incremental sync (a stored delta link): follow the delta pages to the next `@odata.deltaLink`; changed users are
  re-read in `$batch` (profile + manager in one item; a 404 means gone), `@removed` users and disabled accounts are
  deactivated. `410 Gone`, `resyncRequired`, `syncStateNotFound` or an expired page token → a full resync.
- Groups: the connection's `config.groups` (ids, or `{"id", "key"}`) are expanded with
  `/groups/{id}/transitiveMembers/microsoft.graph.user` (`ConsistencyLevel: eventual`); each person carries the
  keys of the groups they belong to, for template and campaign targeting.
- Photos: `/users/{id}/photo/$value` in `$batch` (throttled items retried), stored with `store_asset` and served
  by Relais, so signatures never point at Microsoft.
- The new delta link is stored in `conn.sync_state` only when the listing is applied for real
  (`Listing.after_apply`), so a dry run never skips changes.
- Every list page (users, delta, group members) is retried as deployment writes are: 429/503 with Retry-After
  (decimals too), 5xx and network errors, within `RELAIS_DEPLOY_RETRY_MINUTES`; a Retry-After longer than
  `RELAIS_DEPLOY_DEFER_AFTER_MINUTES` stops the sync. Failures are `SyncError` sentences: 422 for what the admin
  must change (permissions, consent), 502 for what Microsoft kept answering.
"""

from __future__ import annotations

import base64
import logging
from typing import Any
from urllib.parse import quote

from sqlmodel import Session, col, select

from service.assets import asset_url, store_asset
from service.connections.errors import TransientError
from service.connections.microsoft import MicrosoftClient, MicrosoftError
from service.connections.models import ProviderConnection
from service.connections.throttle import Deferred, GaveUp, RetryPolicy, call_with_retry
from service.db import row_id, utcnow
from service.directory.models import PROFILE_FIELDS, Employee, EmployeeGroup
from service.directory.sync import DirectoryPerson, Listing, Skipped, SyncError
from service.settings import Settings

log = logging.getLogger(__name__)

SOURCE = "microsoft"
USER_FIELDS = (
    "id", "userPrincipalName", "displayName", "givenName", "surname", "jobTitle", "department", "mail",
    "businessPhones", "mobilePhone", "officeLocation", "companyName", "employeeId", "accountEnabled",
    "proxyAddresses", "preferredLanguage", "city", "country",
)  # fmt: skip
SELECT = ",".join(USER_FIELDS)
EXPAND = "manager($select=id,displayName,mail,userPrincipalName)"
RESYNC_CODES = {"resyncrequired", "syncstatenotfound", "directory_expiredpagetoken", "syncstateinvalid"}
PHOTO_TYPES = {"image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/gif": "gif"}


def group_keys(config: dict) -> dict[str, str]:
    """{group id: key} from config.groups (plain ids are their own key)."""
    out: dict[str, str] = {}
    for g in config.get("groups") or []:
        if isinstance(g, str):
            out[g] = g
        else:
            out[g["id"]] = g.get("key") or g["id"]
    return out


class GraphDirectory:
    source = SOURCE

    def __init__(
        self, client: MicrosoftClient, settings: Settings, *, groups: dict[str, str] | None = None,
        photos: bool = True, conn: ProviderConnection | None = None, session: Session | None = None,
        page_size: int = 999, policy: RetryPolicy | None = None,
    ):  # fmt: skip
        self.client = client
        self.policy = policy or RetryPolicy(
            budget_seconds=settings.deploy_retry_minutes * 60, defer_after=settings.deploy_defer_after_minutes * 60
        )
        self.settings = settings
        self.groups = groups or {}
        self.photos = photos
        self.conn = conn
        self.session = session
        self.page_size = page_size
        self.last_mode = ""  # "full" | "delta" | "resync": what the last list_people() did

    @classmethod
    def from_connection(cls, conn: ProviderConnection, settings: Settings, *, session: Session | None = None
                        ) -> GraphDirectory:  # fmt: skip
        client = MicrosoftClient.from_connection(conn, settings, pool=8)
        return cls(
            client,
            settings,
            groups=group_keys(conn.config),
            photos=conn.config.get("sync_photos", True),
            conn=conn,
            session=session,
        )

    # ------------------------------------------------------------ seam

    def list_people(self) -> Listing:
        try:
            return self._list_people()
        except MicrosoftError as exc:
            raise sync_error(exc) from exc

    def _list_people(self) -> Listing:
        link = (self.conn.sync_state or {}).get("delta_link") if self.conn is not None and self.session else None
        if link:
            try:
                listing = self._delta(link)
                self.last_mode = "delta"
                return listing
            except MicrosoftError as exc:
                if not _needs_resync(exc):
                    raise
                log.warning(
                    "service.directory.resync", extra={"provider": "microsoft", "status": exc.status, "code": exc.code}
                )
                self.last_mode = "resync"
                return self._full()
        self.last_mode = "full"
        return self._full()

    # ------------------------------------------------------------ full

    def _full(self) -> Listing:
        next_link = self._latest_delta_link() if self.session is not None and self.conn is not None else None
        users: list[dict] = []
        url: str | None = f"{self.client.graph}/v1.0/users"
        params: dict | None = {"$select": SELECT, "$expand": EXPAND, "$top": str(self.page_size)}
        while url:
            page = self._get(url, params=params)
            users.extend(page.get("value") or [])
            url, params = page.get("@odata.nextLink"), None  # follow the next link exactly as given
        memberships = self._memberships()
        people, skipped = self._people(users, memberships)
        return Listing(people=people, skipped=skipped, complete=True, after_apply=self._saver(next_link))

    def _latest_delta_link(self) -> str | None:
        page = self._get(f"{self.client.graph}/v1.0/users/delta", params={"$select": SELECT, "$deltatoken": "latest"})
        while "@odata.deltaLink" not in page and page.get("@odata.nextLink"):
            page = self._get(page["@odata.nextLink"])
        return page.get("@odata.deltaLink")

    # ------------------------------------------------------------ delta

    def _delta(self, link: str) -> Listing:
        changed: dict[str, None] = {}
        removed: dict[str, None] = {}
        url: str | None = link
        next_link = None
        while url:
            page = self._get(url)
            for item in page.get("value") or []:
                uid = item.get("id")
                if not uid:
                    continue
                if "@removed" in item:
                    removed[uid] = None
                    changed.pop(uid, None)
                else:
                    changed[uid] = None  # the same user may appear several times
                    removed.pop(uid, None)
            url = page.get("@odata.nextLink")
            next_link = page.get("@odata.deltaLink") or next_link
        fetched = self.client.graph_batch([
            {"id": str(i), "method": "GET", "url": f"/users/{quote(uid)}?$select={SELECT}&$expand={EXPAND}"}
            for i, uid in enumerate(changed)
        ])  # fmt: skip
        users = []
        for i, uid in enumerate(changed):
            answer = fetched.get(str(i)) or {}
            if answer.get("status") == 404:
                removed[uid] = None
            elif answer.get("status") == 200 and isinstance(answer.get("body"), dict):
                users.append(answer["body"])
            else:
                raise MicrosoftError(
                    int(answer.get("status") or 0), "batch_item", f"Reading user {uid} failed: {answer.get('body')}"
                )
        memberships = self._memberships()
        people, skipped = self._people(users, memberships)
        for p in people:
            removed.pop(p.source_id, None)
        removed.update({s.ref: None for s in skipped if s.reason.startswith("account disabled")})
        people += self._membership_changes(memberships, exclude={p.source_id for p in people} | set(removed))
        return Listing(
            people=people,
            skipped=skipped,
            complete=False,
            removed_source_ids=list(removed),
            after_apply=self._saver(next_link),
        )

    def _membership_changes(self, memberships: dict[str, set[str]], exclude: set[str]) -> list[DirectoryPerson]:
        """People the delta did not mention whose group membership changed (Graph's users delta does not report
        membership): re-listed from what Relais already knows, with their new groups."""
        if self.session is None or self.conn is None:
            return []
        known = set(self.groups.values())
        out = []
        employees = self.session.exec(
            select(Employee).where(
                Employee.org_id == self.conn.org_id, Employee.source == SOURCE, col(Employee.active).is_(True)
            )
        ).all()
        current: dict[int, set[str]] = {}
        for row in self.session.exec(select(EmployeeGroup).where(EmployeeGroup.org_id == self.conn.org_id)).all():
            current.setdefault(row.employee_id, set()).add(row.group_key)
        for emp in employees:
            if emp.source_id in exclude:
                continue
            have = current.get(row_id(emp), set())
            want = (have - known) | memberships.get(emp.source_id, set())
            if want != have:
                out.append(
                    DirectoryPerson(
                        source_id=emp.source_id,
                        aliases=tuple(emp.aliases or ()),
                        groups=tuple(sorted(want)),
                        **{f: getattr(emp, f) for f in PROFILE_FIELDS},
                    )
                )
        return out

    # ------------------------------------------------------------ shared

    def _get(self, url: str, *, params: dict | None = None, headers: dict | None = None) -> dict:
        """One list page, retried as deployment writes are (429/503 with Retry-After, 5xx, network): the same time
        budget and the same bound on a long Retry-After. A failure that outlasts them is a `SyncError`."""

        def attempt() -> dict:
            try:
                return self.client.graph_get(url, params=params, headers=headers)
            except MicrosoftError as exc:
                if exc.transient:
                    raise TransientError(
                        f"Microsoft Graph answered {exc.status or 'a network error'} {exc.code}: {exc.message}",
                        exc.retry_after, throttled=exc.status == 429, code=exc.code or str(exc.status),
                        service="Microsoft Graph",
                    ) from exc  # fmt: skip
                raise

        try:
            return call_with_retry(attempt, policy=self.policy)
        except Deferred as exc:
            raise SyncError(f"{exc.message}; the sync stopped, run it again then.") from exc
        except GaveUp as exc:
            raise SyncError(f"Microsoft Graph kept failing while the directory was listed: {exc.last.message}") from exc

    def _saver(self, next_link: str | None):
        conn, session = self.conn, self.session
        if conn is None or session is None:
            return None

        def save() -> None:
            conn.sync_state = {**(conn.sync_state or {}), "delta_link": next_link}
            conn.last_sync_at = utcnow()
            session.add(conn)

        return save

    def _memberships(self) -> dict[str, set[str]]:
        """{user id: {group keys}} over the configured groups, nested groups expanded."""
        out: dict[str, set[str]] = {}
        for group_id, key in self.groups.items():
            url: str | None = (
                f"{self.client.graph}/v1.0/groups/{quote(group_id)}/transitiveMembers/microsoft.graph.user"
            )
            params: dict | None = {"$select": "id", "$top": str(self.page_size)}
            while url:
                page = self._get(url, params=params, headers={"ConsistencyLevel": "eventual"})
                for member in page.get("value") or []:
                    out.setdefault(member["id"], set()).add(key)
                url, params = page.get("@odata.nextLink"), None
        return out

    def _people(self, users: list[dict], memberships: dict[str, set[str]]) -> tuple[list[DirectoryPerson], list]:
        people: list[DirectoryPerson] = []
        skipped: list[Skipped] = []
        keep: list[dict] = []
        seen: set[str] = set()
        for u in users:
            if u["id"] in seen:
                continue
            seen.add(u["id"])
            if u.get("accountEnabled") is False:
                skipped.append(Skipped(u["id"], f"account disabled ({u.get('userPrincipalName')})"))
            elif not u.get("mail"):
                skipped.append(Skipped(u["id"], f"no mailbox: {u.get('userPrincipalName')} has no mail address"))
            else:
                keep.append(u)
        photos = self._photos([u["id"] for u in keep]) if self.photos else {}
        for u in keep:
            people.append(self._person(u, memberships.get(u["id"], set()), photos.get(u["id"])))
        return people, skipped

    def _person(self, u: dict[str, Any], groups: set[str], photo_url: str | None) -> DirectoryPerson:
        email = u["mail"].lower()
        aliases = []
        for proxy in u.get("proxyAddresses") or []:
            kind, _, address = str(proxy).partition(":")
            if kind.lower() == "smtp" and address and address.lower() != email and address.lower() not in aliases:
                aliases.append(address.lower())
        manager = u.get("manager") or {}
        manager_email = manager.get("mail") or manager.get("userPrincipalName")
        phones = u.get("businessPhones") or []
        location = ", ".join(x for x in (u.get("city"), u.get("country")) if x) or None
        return DirectoryPerson(
            source_id=u["id"], email=email, first_name=u.get("givenName"), last_name=u.get("surname"),
            display_name=u.get("displayName"), title=u.get("jobTitle"), department=u.get("department"),
            office=u.get("officeLocation"), location=location, phone=phones[0] if phones else None,
            mobile=u.get("mobilePhone"), manager_email=manager_email.lower() if manager_email else None,
            photo_url=photo_url, locale=u.get("preferredLanguage"), aliases=tuple(sorted(aliases)),
            groups=tuple(sorted(groups)),
        )  # fmt: skip

    def _photos(self, user_ids: list[str]) -> dict[str, str]:
        """Download photos in $batch and re-host them: {user id: Relais asset URL}."""
        if not user_ids:
            return {}
        answers = self.client.graph_batch([
            {"id": str(i), "method": "GET", "url": f"/users/{quote(uid)}/photo/$value"}
            for i, uid in enumerate(user_ids)
        ])  # fmt: skip
        out = {}
        for i, uid in enumerate(user_ids):
            answer = answers.get(str(i)) or {}
            if answer.get("status") != 200 or not isinstance(answer.get("body"), str):
                continue  # 404: no photo; other failures: keep going without one
            ext = PHOTO_TYPES.get(str(answer["headers"].get("content-type", "image/jpeg")).split(";")[0].lower())
            if ext is None:
                continue
            try:
                data = base64.b64decode(answer["body"], validate=True)
            except ValueError:
                continue
            out[uid] = asset_url(self.settings, store_asset(self.settings, data, ext))
        return out


def sync_error(exc: MicrosoftError) -> SyncError:
    """A Graph failure during a sync, as a sentence: what to change (422) or what Microsoft answered (502)."""
    if exc.kind == "config" or (exc.status in (400, 401) and exc.aadsts):
        return SyncError(exc.message, status_code=422)
    if exc.status == 401:
        return SyncError(
            "Microsoft Graph rejected the app's token even after a fresh one was fetched: check the tenant id and "
            f"the app's consented permissions. ({exc.message})",
            status_code=422,
        )
    if exc.status == 403:
        return SyncError(
            "Microsoft Graph refused to list the directory: add the application permissions User.Read.All and "
            "GroupMember.Read.All (Microsoft Graph) to the app and grant admin consent. "
            f"({exc.code}: {exc.message})",
            status_code=422,
        )
    if exc.status == 404 and "/groups/" in exc.message.lower():
        return SyncError(f"A group in config.groups does not exist in Entra: {exc.message}", status_code=422)
    return SyncError(f"Microsoft Graph answered {exc.status or 'a network error'} {exc.code}: {exc.message}")


def _needs_resync(exc: MicrosoftError) -> bool:
    return exc.status == 410 or exc.code.lower() in RESYNC_CODES


def sync_microsoft(session: Session, *, conn: ProviderConnection, settings: Settings, dry_run: bool = False):
    """Sync one Microsoft connection's directory into employees (the delta link advances only when applied)."""
    from service.directory.sync import apply_listing

    directory = GraphDirectory.from_connection(conn, settings, session=session)
    try:
        listing = directory.list_people()
    finally:
        directory.client.close()
    return apply_listing(session, org_id=conn.org_id, source=SOURCE, listing=listing, dry_run=dry_run)
