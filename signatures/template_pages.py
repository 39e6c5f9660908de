"""Template pages for IT: the list, an editor with line numbers, lint results and size budgets per target, a
live preview for sample employees (tricky names included), and versions with a diff between any two.
Saving calls add_version and linting lint_template, as the templates API does."""

import difflib
from functools import lru_cache

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.directory.models import Employee
from service.errors import AppError
from service.models import Role
from service.page_views import FRAME_HEADERS, frame_message, read_form
from service.pages import PageError, render_page
from service.session import DbSession
from signatures.lint import lint_template
from signatures.models import SignatureKind, SignatureTemplate, TemplateVersion
from signatures.rendering import TemplateCompileError
from signatures.service import add_version, employee_data, get_template, get_version, org_brand, render_version

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)
MAX_SOURCE = 100_000


def _template(session, user: PageUser, template_id: int) -> SignatureTemplate:
    try:
        return get_template(session, org_id=user.org_id, template_id=template_id)
    except AppError:
        raise PageError(
            404, "No such template", "It may belong to another organisation, or the link is wrong."
        ) from None


def _lint(session, org_id: int, source: str) -> dict:
    brand = org_brand(session, org_id)
    return _lint_for(source, repr(brand), brand)


@lru_cache(maxsize=64)
def _lint_for(source: str, _brand_key: str, brand) -> dict:
    """Lint compiles the template (CSS inlined): the same source and brand always give the same report."""
    try:
        return lint_template(source, brand=brand).as_dict()
    except TemplateCompileError as exc:
        issue = {"rule": "compile", "severity": "error", "line": exc.line, "message": exc.reason}
        return {"ok": False, "issues": [issue], "size": None, "budgets": {}}


def sample_employees(session, org_id: int) -> list[Employee]:
    """A few people to preview with, the trickiest names first (apostrophes, accents, right-to-left scripts)."""
    people = session.exec(
        select(Employee)
        .where(Employee.org_id == org_id, Employee.active == True)  # noqa: E712
        .order_by(col(Employee.id))
        .limit(200)
    ).all()

    def tricky(e: Employee) -> int:
        name = f"{e.first_name or ''}{e.last_name or ''}"
        return -sum(1 for ch in name if ch == "'" or ord(ch) > 127 or ch in "-<>&")

    return sorted(people, key=tricky)[:12]


@router.get("/app/templates")
def templates(session: DbSession, request: Request, user: PageUser = Depends(IT)):
    rows = session.exec(
        select(SignatureTemplate).where(SignatureTemplate.org_id == user.org_id).order_by(col(SignatureTemplate.id))
    ).all()
    return render_page(request, "it/templates.html", rows=rows)


@router.get("/app/templates/{template_id}")
def editor(
    session: DbSession,
    request: Request,
    template_id: int,
    a: int | None = None,
    b: int | None = None,
    user: PageUser = Depends(IT),
):
    template = _template(session, user, template_id)
    current = get_version(session, template=template)
    versions = session.exec(
        select(TemplateVersion).where(TemplateVersion.template_id == template.id).order_by(col(TemplateVersion.version))
    ).all()
    diff_lines = _diff(versions, a, b) if a and b else []
    return render_page(
        request,
        "it/template_edit.html",
        template=template,
        source=current.new_source,
        lint=_lint(session, user.org_id, current.new_source),
        versions=versions,
        errors={},
        employees=sample_employees(session, user.org_id),
        diff_lines=diff_lines,
        a=a,
        b=b,
    )


def _diff(versions, a: int, b: int) -> list[str]:
    by_number = {v.version: v for v in versions}
    if a not in by_number or b not in by_number:
        return []
    return list(
        difflib.unified_diff(
            by_number[a].new_source.splitlines(),
            by_number[b].new_source.splitlines(),
            f"version {a}",
            f"version {b}",
            lineterm="",
            n=2,
        )
    )


@router.post("/app/templates/{template_id}")
def save(
    session: DbSession,
    request: Request,
    template_id: int,
    user: PageUser = Depends(IT),
    form: FormData = Depends(read_form),
):
    source = str(form.get("source", ""))[: MAX_SOURCE + 1]
    template = _template(session, user, template_id)
    error = "The template is over 100,000 characters." if len(source) > MAX_SOURCE else None
    if error is None:
        try:
            add_version(session, template=template, new_source=source, reply_source=None, created_by=user.email)
            return RedirectResponse(f"/app/templates/{template_id}?toast=saved", status_code=303)
        except AppError as exc:
            session.rollback()
            error = exc.message
    versions = session.exec(
        select(TemplateVersion).where(TemplateVersion.template_id == template.id).order_by(col(TemplateVersion.version))
    ).all()
    return render_page(
        request,
        "it/template_edit.html",
        status_code=422,
        template=template,
        source=source,
        lint=_lint(session, user.org_id, source),
        versions=versions,
        errors={"source": error},
        employees=sample_employees(session, user.org_id),
        diff_lines=[],
        a=None,
        b=None,
    )


@router.post("/app/templates/{template_id}/check")
def check(
    session: DbSession,
    request: Request,
    template_id: int,
    user: PageUser = Depends(IT),
    form: FormData = Depends(read_form),
):
    """htmx, as the source is typed: lint results and budgets, and the preview frame for the chosen employee."""
    _template(session, user, template_id)
    source = str(form.get("source", ""))[:MAX_SOURCE]
    return render_page(
        request,
        "it/_template_check.html",
        lint=_lint(session, user.org_id, source),
        template_id=template_id,
        employee_id=str(form.get("employee_id", "")),
    )


@router.post("/app/templates/{template_id}/preview")
def preview(
    session: DbSession,
    request: Request,
    template_id: int,
    user: PageUser = Depends(IT),
    form: FormData = Depends(read_form),
):
    """The unsaved source rendered for one employee, for the sandboxed preview frame (a form posts into it)."""
    _template(session, user, template_id)
    source = str(form.get("source", ""))[:MAX_SOURCE]
    employee = str(form.get("employee_id", ""))
    emp = session.get(Employee, int(employee)) if employee.isdigit() else None
    if emp is None or emp.org_id != user.org_id:
        return frame_message(request, "Choose an employee to preview with.")
    draft = TemplateVersion(template_id=template_id, version=0, new_source=source, reply_source=None)
    try:
        rendered = render_version(
            version=draft,
            kind=SignatureKind.new,
            employee=employee_data(emp),
            brand=org_brand(session, user.org_id),
        )
    except (AppError, TemplateCompileError) as exc:
        return frame_message(request, str(getattr(exc, "message", exc)))
    return HTMLResponse(rendered.html, headers=FRAME_HEADERS)
