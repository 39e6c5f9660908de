"""Versioned signature templates and their assignments (employees live in service.directory)."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime
from signatures.layouts import derived_reply

# ---------------------------------------------------------------- templates


class SignatureKind(StrEnum):
    """Which signature: the one for new mail, or the (often shorter) one for replies and forwards."""

    new = "new"
    reply = "reply"


class SignatureTemplate(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("org_id", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    name: str = Field(max_length=120)
    description: str = Field(default="", max_length=1000)
    current_version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TemplateVersion(SQLModel, table=True):
    """An immutable version: editing a template adds a row; old versions stay renderable."""

    __table_args__ = (UniqueConstraint("template_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    template_id: int = Field(foreign_key="signaturetemplate.id", index=True)
    version: int
    new_source: str
    reply_source: str | None = None  # None: replies use the new-mail signature
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_by: str | None = Field(default=None, max_length=120)

    def source(self, kind: "SignatureKind") -> str:
        if kind is SignatureKind.reply:  # a version saved without one (before it was derived) still gets one
            return self.reply_source or derived_reply()
        return self.new_source


class AssignmentKind(StrEnum):
    default = "default"
    department = "department"
    group = "group"


class TemplateAssignment(SQLModel, table=True):
    """Which template an employee gets: group beats department beats the default."""

    __table_args__ = (UniqueConstraint("org_id", "kind", "value"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id", index=True)
    template_id: int = Field(foreign_key="signaturetemplate.id")
    kind: AssignmentKind
    value: str = Field(default="", max_length=320)  # department name or group key; "" for the default
