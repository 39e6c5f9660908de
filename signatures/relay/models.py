"""What each running relay process reports: its counters, refreshed every minute, for IT's status page."""

from datetime import datetime

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class RelayProcess(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=200)  # host:pid:start, unique per process run
    org_id: int = Field(foreign_key="organisation.id", index=True)
    hostname: str = Field(max_length=200)
    listen: str = Field(max_length=200)
    next_hop: str = Field(max_length=200)
    counters: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
