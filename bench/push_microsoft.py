"""`bench/push.py --provider microsoft`: the Microsoft 365 fake behind the deployment push benchmark."""

from __future__ import annotations

from service.connections.models import Provider
from service.db import session_scope


class MicrosoftBench:
    """The Microsoft 365 fake: Entra token endpoint, Exchange admin REST (InvokeCommand), Graph. Same latency and
    write limit as Google, plus Exchange's 4-concurrent-requests-per-mailbox rule (a fifth gets 429)."""

    name = "microsoft"

    def __init__(self, latency: float, write_limit: float):
        from tests.fakes.microsoft import FakeMicrosoft

        self.write_limit = write_limit
        self.fake = FakeMicrosoft(mailbox_concurrency_limit=4)
        self.fake.set_latency(latency)
        # A steady limit with a small burst (a tenth of a second of writes); Relais is configured to pace at 99% of it.
        self.fake.set_write_rate(write_limit, burst=max(1.0, write_limit / 10))
        self._offset = 0

    def __enter__(self):
        self.fake.start()
        return self

    def __exit__(self, *exc):
        self.fake.close()

    def seed(self, engine, org_id: int, mailboxes: int) -> list[str]:
        from service.directory.sync import DirectoryPerson, Listing, apply_listing
        from tests.ms_support import default_template

        people = []
        for i in range(mailboxes):
            email = f"user{i:05d}@contoso.example"
            user = self.fake.add_user(
                email,
                display_name=f"User {i}",
                jobTitle="Engineer",
                owa_options={"timezone": "W. Europe Standard Time"},
            )
            people.append(
                DirectoryPerson(
                    source_id=user["id"],
                    email=email,
                    first_name="User",
                    last_name=str(i),
                    title="Engineer",
                    department="Sales" if i % 2 else "Ops",
                )
            )
        with session_scope(engine) as s:
            apply_listing(s, org_id=org_id, source="microsoft", listing=Listing(people=people), dry_run=False)
        default_template(engine, org_id)
        return [p.email for p in people]

    def connection(self) -> tuple[Provider, dict, str]:
        return (
            Provider.microsoft,
            {"tenant_id": self.fake.tenant_id, "client_id": self.fake.client_id},
            self.fake.client_secret,
        )

    def worker_env(self, concurrency: int | None) -> dict[str, str]:
        env = {
            "RELAIS_MS_AUTHORITY_HOST": self.fake.authority_host,
            "RELAIS_MS_GRAPH_ENDPOINT": self.fake.graph_endpoint,
            "RELAIS_MS_EXCHANGE_ENDPOINT": self.fake.exchange_endpoint,
            "RELAIS_MS_CA_BUNDLE": self.fake.ca_file,
            "RELAIS_MS_WRITES_PER_SECOND": str(self.write_limit * 0.99),
        }
        if concurrency:
            env["RELAIS_MS_CONCURRENCY"] = str(concurrency)
        return env

    def _writes(self) -> list:
        return [w for w in self.fake.writes[self._offset :] if w.via == "exchange"]

    def writes(self) -> int:
        return len(self._writes())

    def duplicate_writes(self) -> int:
        seen: dict[str, int] = {}
        for w in self._writes():
            seen[w.mailbox] = seen.get(w.mailbox, 0) + 1
        return sum(n - 1 for n in seen.values() if n > 1)

    def throttled(self) -> int:
        return sum(1 for r in self.fake.requests if r.status == 429)

    def extra_figures(self) -> dict:
        return {
            "max_concurrent_per_mailbox": max(self.fake.max_concurrency_seen.values(), default=0),
            "mailbox_concurrency_429": sum(self.fake.concurrency_rejections.values()),
            "ignored_writes": len(self.fake.ignored_writes),
        }

    def carries(self, emails: list[str]) -> int:
        """How many mailboxes show a non-empty signature to their user (false successes do not count)."""
        return sum(bool(self.fake.visible_signature(e)) for e in emails)

    def reset(self) -> None:
        self._offset = len(self.fake.writes)
