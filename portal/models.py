"""The portal's tables: what an employee agrees to show others, and the corrections they propose to their profile.

Every visibility choice defaults to no: nothing about one employee is shown to colleagues or the public until
they say so (from "My data" in the portal)."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class Visibility(SQLModel, table=True):
    __tablename__ = "employee_visibility"

    employee_id: int = Field(foreign_key="employee.id", primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    rank_visible: bool = False  # my rank and figures on the leaderboard others see
    leader_name_visible: bool = False  # my name in "leaders who shared this" in the share center
    public_ambassador: bool = False  # my name and photo on the public ambassador page and widget
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CorrectionState(StrEnum):
    pending = "pending"
    accepted = "accepted"
    declined = "declined"


class ProfileCorrection(SQLModel, table=True):
    """A change an employee proposes to one field of their directory profile; IT accepts or declines it. The row
    is its own audit: who proposed what and when, who decided, when, and why not."""

    __tablename__ = "profile_correction"
    __table_args__ = (Index("ix_profile_correction_org_state", "org_id", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    employee_id: int = Field(foreign_key="employee.id", index=True)
    field: str = Field(max_length=40)  # one of portal.corrections.FIELDS
    old_value: str | None = Field(default=None, max_length=1000)  # the directory's value when proposed
    new_value: str | None = Field(default=None, max_length=1000)  # None: remove the value
    state: CorrectionState = Field(
        default=CorrectionState.pending, sa_type=sa.Enum(CorrectionState, native_enum=False, length=20)
    )
    proposed_by: str = Field(max_length=320)  # the account's address
    proposed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    reviewed_by: str | None = Field(default=None, max_length=320)
    reviewed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    decline_reason: str = Field(default="", max_length=500)
