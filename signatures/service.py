"""Signature logic without HTTP: templates, versions, assignments, and rendering one employee.

Every signature (preview, export, API, add-in, deployment) is rendered by `signatures.renderer.SignatureRenderer`
on top of `render_version` here, so what IT previews is byte for byte what a mailbox receives.
"""

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from service.brand import brand_for
from service.db import get_existing, row_id, utcnow
from service.directory.models import Employee, EmployeeGroup
from service.errors import Invalid, NotFound
from service.models import Brand
from service.tenancy import get_owned
from service.validation import register_brand_check
from signatures.context import BannerData, BrandData, EmployeeData, SocialLink, build_context
from signatures.layouts import derived_reply
from signatures.lint import lint_template
from signatures.models import AssignmentKind, SignatureKind, SignatureTemplate, TemplateAssignment, TemplateVersion
from signatures.rendering import RenderedSignature, TemplateError, compiled_for, render


def employee_data(emp: Employee) -> EmployeeData:
    return EmployeeData.from_obj(emp)


def brand_data(brand: Brand) -> BrandData:
    return BrandData(
        company_name=brand.company_name, website=brand.website, logo_url=brand.logo_url,
        logo_width=brand.logo_width, logo_height=brand.logo_height, primary_color=brand.primary_color,
        secondary_color=brand.secondary_color, font_stack=brand.font_stack, address=brand.address,
        social_links=tuple(SocialLink(network=s["network"], url=s["url"]) for s in brand.social_links),
        disclaimer_html=brand.disclaimer_html,
    )  # fmt: skip


# ---------------------------------------------------------------- templates and versions


@dataclass(frozen=True)
class LintProblem:
    kind: str
    line: int | None
    rule: str
    message: str
    field: str | None = None  # the brand field that causes it, when it is not the template


class TemplateRefused(Invalid):
    """A template that cannot be saved: the same code as every other template error."""

    code = "template_invalid"


def check_sources(*, new_source: str, reply_source: str | None, brand: BrandData) -> list[dict]:
    """Compile and lint the new-mail and reply source; raise Invalid (line and reason) on any error, return warnings."""
    errors: list[LintProblem] = []
    warnings: list[dict] = []
    for kind, source in (("new", new_source), ("reply", reply_source)):
        if source is None:
            continue
        try:
            report = lint_template(source, brand=brand)
        except TemplateError as exc:
            errors.append(LintProblem(kind, exc.line, exc.rule, exc.reason))
            continue
        for issue in report.issues:
            item = LintProblem(kind, issue.line, issue.rule, issue.message, issue.field)
            if issue.severity == "error":
                errors.append(item)
            else:
                warnings.append(item.__dict__)
    if errors:
        first = errors[0]
        where = f"line {first.line}: " if first.line and not first.field else ""
        raise TemplateRefused(
            f"The {first.kind}-mail template was refused ({where}{first.message})"
            + (f" and {len(errors) - 1} more problem(s)." if len(errors) > 1 else "."),
            details={"errors": [e.__dict__ for e in errors], "warnings": warnings},
        )
    return warnings


def org_brand(session: Session, org_id: int) -> BrandData:
    """What templates render with: the saved brand, or the defaults under the organisation's name."""
    return brand_data(brand_for(session, org_id))


def create_template(
    session: Session, *, org_id: int, name: str, description: str, new_source: str,
    reply_source: str | None, created_by: str | None,
) -> tuple[SignatureTemplate, TemplateVersion, list[dict]]:  # fmt: skip
    """Without `reply_source`, replies get the derived two-line signature (see `derived_reply`)."""
    if session.exec(
        select(SignatureTemplate).where(SignatureTemplate.org_id == org_id, SignatureTemplate.name == name)
    ).first():
        raise Invalid(f"A template named {name!r} already exists; choose another name or edit that one.")
    reply_source = reply_source or derived_reply()
    warnings = check_sources(new_source=new_source, reply_source=reply_source, brand=org_brand(session, org_id))
    template = SignatureTemplate(org_id=org_id, name=name, description=description, current_version=1)
    session.add(template)
    session.flush()
    version = TemplateVersion(
        template_id=row_id(template), version=1, new_source=new_source, reply_source=reply_source, created_by=created_by
    )
    session.add(version)
    session.flush()
    return template, version, warnings


def add_version(
    session: Session, *, template: SignatureTemplate, new_source: str, reply_source: str | None,
    created_by: str | None,
) -> tuple[TemplateVersion, list[dict]]:  # fmt: skip
    """Without `reply_source`, the current version's reply signature is kept (derived if it had none)."""
    if reply_source is None:
        reply_source = get_version(session, template=template).reply_source or derived_reply()
    warnings = check_sources(
        new_source=new_source, reply_source=reply_source, brand=org_brand(session, template.org_id)
    )
    template.current_version += 1
    template.updated_at = utcnow()
    version = TemplateVersion(
        template_id=row_id(template),
        version=template.current_version,
        new_source=new_source,
        reply_source=reply_source,
        created_by=created_by,
    )
    session.add_all([template, version])
    session.flush()
    return version, warnings


def get_template(session: Session, *, org_id: int, template_id: int) -> SignatureTemplate:
    return get_owned(session, SignatureTemplate, template_id, org_id=org_id, label="signature template")


def get_version(session: Session, *, template: SignatureTemplate, version: int | None = None) -> TemplateVersion:
    number = version or template.current_version
    row = session.exec(
        select(TemplateVersion).where(TemplateVersion.template_id == template.id, TemplateVersion.version == number)
    ).first()
    if row is None:
        raise NotFound(f"Template {template.id} has no version {number} (latest is {template.current_version}).")
    return row


# ---------------------------------------------------------------- which template an employee gets


def template_for(session: Session, *, employee: Employee) -> SignatureTemplate:
    """Group assignment beats department beats the organisation default."""
    rows = session.exec(select(TemplateAssignment).where(TemplateAssignment.org_id == employee.org_id)).all()
    by_kind = {(row.kind, row.value): row.template_id for row in rows}
    groups = session.exec(select(EmployeeGroup.group_key).where(EmployeeGroup.employee_id == employee.id)).all()
    for group in sorted(groups):
        if (AssignmentKind.group, group) in by_kind:
            return get_existing(session, SignatureTemplate, by_kind[(AssignmentKind.group, group)])
    if employee.department and (AssignmentKind.department, employee.department) in by_kind:
        return get_existing(session, SignatureTemplate, by_kind[(AssignmentKind.department, employee.department)])
    if (AssignmentKind.default, "") in by_kind:
        return get_existing(session, SignatureTemplate, by_kind[(AssignmentKind.default, "")])
    raise NotFound("No template applies to this employee: set a default assignment (PUT /api/assignments).")


# ---------------------------------------------------------------- rendering


def render_version(
    *, version: TemplateVersion, kind: SignatureKind, employee: EmployeeData, brand: BrandData,
    banner: BannerData | None = None,
) -> RenderedSignature:  # fmt: skip
    # Keyed by the source itself: row ids can be reused (SQLite), a source cannot lie about its content.
    source = version.source(kind)
    compiled = compiled_for(source, source)
    return render(compiled, build_context(employee=employee, brand=brand, banner=banner))


def render_employee(
    session: Session, *, employee: Employee, kind: SignatureKind = SignatureKind.new,
    version: TemplateVersion | None = None, banner: BannerData | None = None,
) -> tuple[TemplateVersion, RenderedSignature]:  # fmt: skip
    if version is None:
        version = get_version(session, template=template_for(session, employee=employee))
    rendered = render_version(
        version=version,
        kind=kind,
        employee=employee_data(employee),
        brand=org_brand(session, employee.org_id),
        banner=banner,
    )
    return version, rendered


def current_banner(session: Session, *, employee: Employee, at: datetime) -> BannerData | None:
    """The banner the campaign rotation gives this employee at `at`."""
    from signatures.campaigns.service import banner_for  # campaigns build on this module: import late

    return banner_for(session, employee=employee, at=at)


# ---------------------------------------------------------------- brand changes


@register_brand_check
def templates_accept_brand(session: Session, org_id: int, brand: Brand) -> None:
    """A brand change goes through the templates' lint: each template's current version (or, before there is
    one, the default layout) must still be accepted with the new brand."""
    from signatures.layouts import LAYOUTS

    data = brand_data(brand)
    with session.no_autoflush:
        templates = session.exec(select(SignatureTemplate).where(SignatureTemplate.org_id == org_id)).all()
        versions = [(t.name, get_version(session, template=t)) for t in templates]
    sources = [(name, v.new_source, v.reply_source) for name, v in versions]
    if not sources:
        layout = LAYOUTS["classic"]
        sources = [("the default layout", layout.new_source, layout.reply_source)]
    for name, new_source, reply_source in sources:
        try:
            check_sources(new_source=new_source, reply_source=reply_source, brand=data)
        except Invalid as exc:
            raise Invalid(
                f"The brand was refused: with it, template {name!r} fails its checks ({exc.message})",
                details={"template": name, **(exc.details or {})},
            ) from None
