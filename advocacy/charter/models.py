"""Charter versions, the comments on their passages, and who accepted which version."""

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from service.db import utcnow
from service.dbtypes import UTCDateTime


class VersionStatus(StrEnum):
    draft = "draft"  # being written; employees comment on it
    published = "published"  # a numbered version; the latest one is in force


class CharterVersion(SQLModel, table=True):
    __tablename__ = "charter_version"
    __table_args__ = (Index("ix_charter_version_org_status", "org_id", "status"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    status: VersionStatus = Field(default=VersionStatus.draft,
                                  sa_type=sa.Enum(VersionStatus, native_enum=False, length=20))  # fmt: skip
    title: str = Field(default="", max_length=200)
    body: str = Field(default="", max_length=100_000)  # Markdown, as comms wrote it
    major: int | None = None  # set when published: major.minor
    minor: int | None = None
    changelog: str = Field(default="", max_length=5000)
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    published_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def number(self) -> str:
        return f"{self.major}.{self.minor}" if self.major is not None else ""


class CharterComment(SQLModel, table=True):
    """A comment on one passage of a version; a reply has the thread's first comment as its parent."""

    __tablename__ = "charter_comment"
    __table_args__ = (Index("ix_charter_comment_version", "version_id", "passage"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    version_id: int = Field(foreign_key="charter_version.id")
    passage: str = Field(max_length=40)  # the passage's anchor id (advocacy.charter.markdown)
    quote: str = Field(default="", max_length=300)  # the passage's opening words when the thread started
    parent_id: int | None = Field(default=None, foreign_key="charter_comment.id", index=True)
    author_user_id: int = Field(foreign_key="app_user.id")
    author_employee_id: int | None = Field(default=None, foreign_key="employee.id")
    from_comms: bool = False  # written by comms (shown as "Communications team")
    body: str = Field(max_length=2000)  # plain text
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_by: int | None = Field(default=None, foreign_key="app_user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Surface(StrEnum):
    portal = "portal"  # /me/charter, signed in
    newsletter = "newsletter"  # the one-time page behind a newsletter share link


class CharterAcceptance(SQLModel, table=True):
    __tablename__ = "charter_acceptance"
    __table_args__ = (
        UniqueConstraint("employee_id", "version_id"),
        Index("ix_charter_acceptance_org_major", "org_id", "major"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organisation.id")
    employee_id: int = Field(foreign_key="employee.id")
    version_id: int = Field(foreign_key="charter_version.id")
    major: int  # the version's major number: accepting x.y counts for every x.*
    surface: Surface = Field(sa_type=sa.Enum(Surface, native_enum=False, length=20))
    accepted_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
