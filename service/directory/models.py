"""Employees and their directory groups: the people every feature (signatures, links, clicks, newsletter,
portal) is about. Rows are upserted by the directory sync (service.directory.sync) and never deleted."""

from datetime import datetime

from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class EmployeeBase(SQLModel):
    """The employee profile, declared once: the table, the API, the directory sync (PROFILE_FIELDS,
    DirectoryPerson), the CSV columns and what signature templates see (EmployeeData) follow this list;
    tests/test_profile_fields.py fails when one of them drifts."""

    email: str = Field(max_length=320)
    first_name: str | None = Field(default=None, max_length=120)
    last_name: str | None = Field(default=None, max_length=120)
    display_name: str | None = Field(default=None, max_length=240)
    title: str | None = Field(default=None, max_length=200)
    department: str | None = Field(default=None, max_length=200, index=True)
    office: str | None = Field(default=None, max_length=200, index=True)
    location: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=60)
    mobile: str | None = Field(default=None, max_length=60)
    manager_email: str | None = Field(default=None, max_length=320)
    photo_url: str | None = Field(default=None, max_length=1000)
    locale: str | None = Field(default=None, max_length=20)
    pronouns: str | None = Field(default=None, max_length=40)


PROFILE_FIELDS: tuple[str, ...] = tuple(EmployeeBase.model_fields)


class Employee(EmployeeBase, table=True):
    __table_args__ = (
        UniqueConstraint("org_id", "email"),
        UniqueConstraint("org_id", "source", "source_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    active: bool = Field(default=True, index=True)
    source: str = Field(default="csv", max_length=20)  # csv | google | microsoft
    source_id: str = Field(max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    deactivated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class EmployeePublic(EmployeeBase):
    id: int
    aliases: list[str]
    active: bool
    source: str
    source_id: str
    groups: list[str] = []


class EmployeeGroup(SQLModel, table=True):
    """Directory group membership, used to target templates, campaigns and newsletters."""

    __table_args__ = (UniqueConstraint("employee_id", "group_key"), Index("ix_group_org_key", "org_id", "group_key"))

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    employee_id: int = Field(foreign_key="employee.id", index=True)
    group_key: str = Field(max_length=320)


class DirectorySync(SQLModel, table=True):
    """One run of the directory sync (scheduled, "sync now", a CSV import applied, the API): what it found and
    what it changed, or why it failed. Dry runs change nothing and are not recorded."""

    __tablename__ = "directory_sync"
    __table_args__ = (Index("ix_directory_sync_org_started", "org_id", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    source: str = Field(max_length=20)  # csv | google | microsoft
    trigger: str = Field(max_length=20)  # schedule | manual | import | api | cli
    requested_by: str | None = Field(default=None, max_length=320)
    state: str = Field(default="queued", max_length=20)  # queued | listing | applying | done | failed
    created: int = 0
    updated: int = 0
    deactivated: int = 0
    unchanged: int = 0
    refused: int = 0  # people the source listed but Relais could not take (no email, a duplicate...)
    refusals: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # first 200
    # Why it failed: the sentence's English message id and its parameters (shown translated on the page).
    error_msgid: str | None = Field(default=None, max_length=2000)
    error_params: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
