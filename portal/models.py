"""What an employee agrees to show others. Every choice defaults to no: nothing about one employee is shown to
colleagues or the public until they say so (from "My data" in the portal)."""

from datetime import datetime

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
