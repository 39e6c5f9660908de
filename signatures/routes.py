"""Directory, templates, assignments and previews. Thin: the logic lives in signatures.service."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

import signatures.service
from service.api_errors import HTML_OR_TEXT
from service.auth import Principal, requires
from service.db import row_id
from service.directory.service import get_employee
from service.errors import Invalid
from service.models import Role
from service.session import DbSession
from service.tenancy import get_owned
from signatures.layouts import LAYOUTS
from signatures.lint import lint_template
from signatures.models import AssignmentKind, SignatureKind, SignatureTemplate, TemplateAssignment, TemplateVersion
from signatures.renderer import SignatureRenderer
from signatures.rendering import TemplateError
from signatures.service import add_version, get_version, org_brand

router = APIRouter(prefix="/api")

IT = requires(Role.it)
READ = requires(Role.it, Role.comms)

# ---------------------------------------------------------------- templates


class LayoutPublic(BaseModel):
    name: str
    title: str
    description: str


class TemplateIn(BaseModel):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field("", max_length=1000)
    layout: str | None = Field(None, description="Start from a shipped layout (see GET /api/layouts).")
    new_source: str | None = Field(None, max_length=100_000, description="Jinja HTML for new mail.")
    reply_source: str | None = Field(
        None,
        max_length=100_000,
        description="Jinja HTML for replies; omitted: the layout's, else a derived two-line signature.",
    )


class VersionIn(BaseModel):
    new_source: str = Field(max_length=100_000)
    reply_source: str | None = Field(
        None, max_length=100_000, description="Omitted: the current version's reply signature is kept."
    )


class VersionPublic(BaseModel):
    version: int
    new_source: str
    reply_source: str | None
    created_at: datetime
    created_by: str | None


class TemplatePublic(BaseModel):
    id: int
    name: str
    description: str
    current_version: int
    updated_at: datetime


class TemplateSaved(TemplatePublic):
    warnings: list[dict] = []
    reply_origin: Literal["stated", "kept", "derived"] = Field(
        description="Where the reply signature comes from: given in this request (or the layout's), kept from the "
        "previous version, or derived (a two-line signature) because none was given."
    )


class LintIn(BaseModel):
    source: str = Field(max_length=100_000)


@router.get("/layouts", tags=["templates"], response_model=list[LayoutPublic])
def list_layouts(p: Principal = Depends(READ)):
    return [LayoutPublic(name=k, title=v.title, description=v.description) for k, v in LAYOUTS.items()]


@router.get("/templates", tags=["templates"], response_model=list[TemplatePublic])
def list_templates(session: DbSession, p: Principal = Depends(READ)):
    return session.exec(
        select(SignatureTemplate).where(SignatureTemplate.org_id == p.org_id).order_by(col(SignatureTemplate.id))
    ).all()


@router.post("/templates", tags=["templates"], response_model=TemplateSaved, status_code=201)
def create_template(session: DbSession, body: TemplateIn, p: Principal = Depends(IT)):
    new_source, reply_source = body.new_source, body.reply_source
    if body.layout is not None:
        layout = LAYOUTS.get(body.layout)
        if layout is None:
            raise Invalid(f"Unknown layout {body.layout!r}; choose one of: {', '.join(LAYOUTS)}.")
        new_source = new_source or layout.new_source
        reply_source = reply_source or layout.reply_source
    if not new_source:
        raise Invalid("Give either 'layout' or 'new_source'.")
    reply_origin = "stated" if reply_source else "derived"
    template, _version, warnings = signatures.service.create_template(
        session,
        org_id=p.org_id,
        name=body.name,
        description=body.description,
        new_source=new_source,
        reply_source=reply_source,
        created_by=p.name,
    )
    return TemplateSaved(
        **TemplatePublic.model_validate(template, from_attributes=True).model_dump(),
        warnings=warnings,
        reply_origin=reply_origin,
    )


@router.get("/templates/{template_id}", tags=["templates"], response_model=TemplatePublic)
def get_template(session: DbSession, template_id: int, p: Principal = Depends(READ)):
    return signatures.service.get_template(session, org_id=p.org_id, template_id=template_id)


@router.put(
    "/templates/{template_id}",
    tags=["templates"],
    response_model=TemplateSaved,
    summary="Save a new version (old versions stay renderable)",
)
def put_template(session: DbSession, template_id: int, body: VersionIn, p: Principal = Depends(IT)):
    template = signatures.service.get_template(session, org_id=p.org_id, template_id=template_id)
    if body.reply_source is not None:
        reply_origin = "stated"
    else:
        reply_origin = "kept" if get_version(session, template=template).reply_source else "derived"
    _v, warnings = add_version(
        session, template=template, new_source=body.new_source, reply_source=body.reply_source, created_by=p.name
    )
    return TemplateSaved(
        **TemplatePublic.model_validate(template, from_attributes=True).model_dump(),
        warnings=warnings,
        reply_origin=reply_origin,
    )


@router.get("/templates/{template_id}/versions", tags=["templates"], response_model=list[VersionPublic])
def list_versions(session: DbSession, template_id: int, p: Principal = Depends(READ)):
    template = signatures.service.get_template(session, org_id=p.org_id, template_id=template_id)
    return session.exec(
        select(TemplateVersion).where(TemplateVersion.template_id == template.id).order_by(col(TemplateVersion.version))
    ).all()


@router.post(
    "/templates/lint",
    tags=["templates"],
    summary="Compile and lint a template without saving it: 200 with ok=false and the issues when it is wrong",
)
def lint_source(session: DbSession, body: LintIn, p: Principal = Depends(IT)):
    try:
        report = lint_template(body.source, brand=org_brand(session, p.org_id))
    except TemplateError as exc:  # compile, sandbox and unknown-name errors alike
        issue = {"rule": exc.rule, "severity": "error", "line": exc.line, "message": exc.reason, "field": None}
        return {"ok": False, "issues": [issue], "size": None, "budgets": {}}
    return report.as_dict()


class RenderedPublic(BaseModel):
    employee_id: int
    template_id: int
    version: int
    kind: SignatureKind
    html: str
    text: str
    content_hash: str


@router.get(
    "/templates/{template_id}/preview",
    tags=["templates"],
    response_model=RenderedPublic,
    responses=HTML_OR_TEXT,
    summary="Preview a template version for any employee",
)
def preview(
    session: DbSession,
    request: Request,
    template_id: int,
    employee_id: int,
    kind: SignatureKind = SignatureKind.new,
    version: int | None = None,
    format: Literal["json", "html", "text"] = "json",
    p: Principal = Depends(READ),
):
    template = signatures.service.get_template(session, org_id=p.org_id, template_id=template_id)
    row = get_version(session, template=template, version=version)
    emp = get_employee(session, org_id=p.org_id, employee_id=employee_id)
    _v, rendered = _renderer(request, session, p.org_id).render(emp, kind, version=row)
    return _respond(rendered, format, row_id(emp), row_id(template), row.version, kind)


@router.get(
    "/employees/{employee_id}/signature",
    tags=["directory"],
    response_model=RenderedPublic,
    responses=HTML_OR_TEXT,
    summary="The employee's current signature, exactly as deployments write it",
)
def current_signature(
    session: DbSession,
    request: Request,
    employee_id: int,
    kind: SignatureKind = SignatureKind.new,
    format: Literal["json", "html", "text"] = "json",
    p: Principal = Depends(READ),
):
    emp = get_employee(session, org_id=p.org_id, employee_id=employee_id)
    version, rendered = _renderer(request, session, p.org_id).render(emp, kind)
    return _respond(rendered, format, row_id(emp), version.template_id, version.version, kind)


def _renderer(request: Request, session: Session, org_id: int) -> SignatureRenderer:
    """The deployments' renderer (banner included), so previews match what mailboxes get."""
    return SignatureRenderer(session, org_id=org_id, settings=request.app.state.settings)


def _respond(rendered, fmt: str, employee_id: int, template_id: int, version: int, kind: SignatureKind):
    if fmt == "html":
        return HTMLResponse(rendered.html)
    if fmt == "text":
        return PlainTextResponse(rendered.text)
    return RenderedPublic(
        employee_id=employee_id,
        template_id=template_id,
        version=version,
        kind=kind,
        html=rendered.html,
        text=rendered.text,
        content_hash=rendered.content_hash,
    )


# ---------------------------------------------------------------- assignments


class AssignmentIn(BaseModel):
    template_id: int
    kind: AssignmentKind
    value: str = Field("", max_length=320, description="Department name or group key; empty for the default.")


class AssignmentPublic(AssignmentIn):
    id: int


@router.get("/assignments", tags=["templates"], response_model=list[AssignmentPublic])
def list_assignments(session: DbSession, p: Principal = Depends(READ)):
    return session.exec(
        select(TemplateAssignment).where(TemplateAssignment.org_id == p.org_id).order_by(col(TemplateAssignment.id))
    ).all()


@router.put(
    "/assignments",
    tags=["templates"],
    response_model=AssignmentPublic,
    summary="Assign a template to a department, a group, or as the default (replaces the previous one)",
)
def put_assignment(session: DbSession, body: AssignmentIn, p: Principal = Depends(IT)):
    signatures.service.get_template(session, org_id=p.org_id, template_id=body.template_id)
    value = "" if body.kind is AssignmentKind.default else body.value.strip()
    if body.kind is not AssignmentKind.default and not value:
        raise Invalid(f"A {body.kind.value} assignment needs a 'value' (the {body.kind.value} name).")
    row = session.exec(
        select(TemplateAssignment).where(
            TemplateAssignment.org_id == p.org_id,
            TemplateAssignment.kind == body.kind,
            TemplateAssignment.value == value,
        )
    ).first() or TemplateAssignment(org_id=p.org_id, kind=body.kind, value=value, template_id=0)
    row.template_id = body.template_id
    session.add(row)
    session.flush()
    return row


@router.delete("/assignments/{assignment_id}", tags=["templates"], status_code=204)
def delete_assignment(session: DbSession, assignment_id: int, p: Principal = Depends(IT)):
    row = get_owned(session, TemplateAssignment, assignment_id, org_id=p.org_id, label="assignment")
    session.delete(row)
