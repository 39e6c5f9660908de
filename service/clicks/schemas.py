"""The analytics API's request and response bodies."""

from datetime import datetime

from pydantic import BaseModel

from service.clicks.models import TrackingSettingsBase


class TrackingSettingsPublic(TrackingSettingsBase):
    pass


class OptOutPublic(BaseModel):
    employee_id: int
    created_at: datetime
    set_by: str = "comms"  # "employee": their own choice, which only they can undo


class FigureRow(BaseModel):
    model_config = {"extra": "allow"}
    human: int
    raw: int
    scanner: int
    crawler: int
    unique_clickers: int
    impressions: int | None = None
    ctr: float | None = None


class LeaderRow(BaseModel):
    rank: int
    employee_id: int
    name: str | None
    email: str | None
    department: str | None
    human: int
    raw: int
    unique_clickers: int
