"""Who may send through the relay, and the signature each sender's message gets.

Addresses, domains and rendered signatures are cached for `cache_seconds` (default 60 s): the relay then
makes no database round trip per message, and a directory or template change shows within a minute. The
cache is the only state a relay process has, so processes scale out freely behind a TCP load balancer.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from service.db import key_column, session_scope
from service.directory.models import Employee
from service.settings import Settings
from signatures.models import SignatureKind
from signatures.relay.stamp import Signature


@dataclass(frozen=True)
class Roster:
    by_address: dict[str, int]  # lower-case address or alias → employee id (active employees only)
    domains: frozenset[str]
    loaded_at: float


class SenderDirectory:
    def __init__(self, engine: Engine, *, org_id: int, settings: Settings, domains: list[str] | None = None,
                 cache_seconds: float = 60.0):  # fmt: skip
        self.engine = engine
        self.org_id = org_id
        self.settings = settings
        self.fixed_domains = frozenset(d.strip().lower().lstrip("@") for d in (domains or []) if d.strip())
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._roster: Roster | None = None
        self._signatures: dict[tuple[int, SignatureKind], tuple[float, Signature]] = {}

    # ------------------------------------------------------------ addresses and domains

    def roster(self) -> Roster:
        roster = self._roster
        if roster is not None and time.monotonic() - roster.loaded_at < self.cache_seconds:
            return roster
        with self._lock:
            if self._roster is not roster and self._roster is not None:
                return self._roster
            self._roster = self._load()
            return self._roster

    def _load(self) -> Roster:
        by_address: dict[str, int] = {}
        with Session(self.engine) as session:
            rows = session.exec(
                select(key_column(Employee), Employee.email, Employee.aliases).where(
                    Employee.org_id == self.org_id,
                    Employee.active == True,  # noqa: E712
                )
            ).all()
        for emp_id, email, aliases in rows:
            for address in [email, *(aliases or [])]:
                if address:
                    by_address[address.strip().lower()] = emp_id
        domains = self.fixed_domains or frozenset(a.rpartition("@")[2] for a in by_address if "@" in a)
        return Roster(by_address=by_address, domains=domains, loaded_at=time.monotonic())

    def employee_for(self, address: str) -> int | None:
        return self.roster().by_address.get(address.strip().lower())

    def domain_allowed(self, address: str) -> bool:
        return address.rpartition("@")[2].strip().lower() in self.roster().domains

    # ------------------------------------------------------------ signatures

    def signature_for(self, employee_id: int, kind: SignatureKind) -> Signature:
        """The employee's signature as `/api/employees/{id}/signature` renders it (campaign banner included)."""
        key = (employee_id, kind)
        cached = self._signatures.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        signature = self._render(employee_id, kind)
        self._signatures[key] = (time.monotonic(), signature)
        return signature

    def _render(self, employee_id: int, kind: SignatureKind) -> Signature:
        from signatures.campaigns.service import banner_for
        from signatures.service import render_employee

        with session_scope(self.engine) as session:  # banner links are minted (idempotently): a write
            employee = session.get(Employee, employee_id)
            if employee is None or not employee.active or employee.org_id != self.org_id:
                raise LookupError(f"employee {employee_id} is no longer an active employee of this organisation")
            banner = banner_for(session, employee=employee, settings=self.settings)
            _version, rendered = render_employee(session, employee=employee, kind=kind, banner=banner)
        return Signature(html=rendered.html, text=rendered.text)
