"""Deployments, their per-mailbox items, and the last signature written to each address."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import JSON, Column, Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class DeploymentStatus(StrEnum):
    queued = "queued"
    running = "running"
    done = "done"
    failed = "failed"  # stopped by a configuration error: the message says what to fix


class ItemState(StrEnum):
    pending = "pending"
    writing = "writing"  # handed to the provider; may or may not have landed if the worker died
    done = "done"


class Deployment(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    provider: str = Field(max_length=20)
    dry_run: bool = False
    status: DeploymentStatus = Field(
        default=DeploymentStatus.queued, sa_type=sa.Enum(DeploymentStatus, native_enum=False, length=20), index=True
    )
    target_filter: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_by: str = Field(default="", max_length=120)
    reason: str = Field(default="", max_length=200)  # "manual", "scheduled: template changed", "retry of #12"
    template_versions: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    counts: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    total: int = 0
    done: int = 0
    writes: int = 0
    message: str = Field(default="")  # why it stopped, or warnings
    worker: str | None = Field(default=None, max_length=120)  # host:pid of the worker running it
    heartbeat_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class DeploymentItem(SQLModel, table=True):
    """One mailbox of one deployment. `addresses` holds the per-address plan and outcome."""

    __table_args__ = (
        UniqueConstraint("deployment_id", "mailbox"),
        Index("ix_item_deployment_state", "deployment_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    deployment_id: int = Field(foreign_key="deployment.id")
    employee_id: int = Field(foreign_key="employee.id", index=True)
    mailbox: str = Field(max_length=320)
    state: ItemState = Field(default=ItemState.pending, sa_type=sa.Enum(ItemState, native_enum=False, length=20))
    worker: str | None = Field(default=None, max_length=120)  # host:pid holding it while `writing`
    # Dry run: added | changed | unchanged | skipped. Apply: applied | unchanged | skipped | failed.
    outcome: str | None = Field(default=None, max_length=20, index=True)
    reason: str = Field(default="")
    content_hash: str = Field(default="", max_length=64)
    html: str = Field(default="", sa_type=sa.Text)
    text: str = Field(default="", sa_type=sa.Text)
    reply_html: str = Field(default="", sa_type=sa.Text)
    reply_text: str = Field(default="", sa_type=sa.Text)
    addresses: list = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    attempts: int = 0
    writes: int = 0
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeploymentWorker(SQLModel, table=True):
    """A worker process taking part in a deployment (the one holding its lease, and any helping it). Its
    `writing` items are its own while it beats; once it is gone, or silent for a lease, anyone may take them."""

    __tablename__ = "deployment_worker"

    deployment_id: int = Field(foreign_key="deployment.id", primary_key=True)
    worker: str = Field(max_length=120, primary_key=True)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SignatureState(SQLModel, table=True):
    """The last signature Relais wrote to an address: what makes re-deployments incremental."""

    __table_args__ = (UniqueConstraint("org_id", "provider", "address"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    provider: str = Field(max_length=20)
    address: str = Field(max_length=320)
    employee_id: int | None = Field(default=None, foreign_key="employee.id")
    content_hash: str = Field(max_length=64)
    html: str = Field(default="", sa_type=sa.Text)
    deployment_id: int | None = Field(default=None, foreign_key="deployment.id")
    written_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
