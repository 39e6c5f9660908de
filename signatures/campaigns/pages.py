"""Campaign pages: the list by state, create and edit with A/B variants (each with its banner upload, text,
page and share), a live audience count, a live preview per variant of a chosen employee's real signature, and
the variants' figures. Saving goes through the service functions the campaigns API calls (create_campaign,
update_campaign), so the same rules and sentences apply."""

from fastapi import APIRouter, Depends, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import col, func, select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.assets import asset_url
from service.db import row_id, utcnow
from service.directory.audience import Audience
from service.directory.models import Employee
from service.errors import AppError, Invalid, NotFound
from service.models import Role
from service.page_views import (
    FRAME_HEADERS,
    app_error,
    frame_message,
    local_input,
    org_zone,
    page_of,
    parse_form,
    parse_local,
    read_form,
)
from service.pages import render_page
from service.session import DbSession
from signatures.campaigns.ab_figures import variant_figures
from signatures.campaigns.models import BannerImage, Campaign, CampaignIn, CampaignState, CampaignUpdate
from signatures.campaigns.service import (
    CAMPAIGN_MATCH,
    campaign_public,
    campaign_settings,
    create_campaign,
    display_size,
    get_campaign,
    update_campaign,
    upload_banner,
    variants_of,
)
from signatures.campaigns.variant_form import (
    MAX_VARIANTS,
    VariantForm,
    VariantRow,
    add_row,
    check,
    read_rows,
    remove_row,
    rows_of,
    with_keys,
)

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)


def _zone(session, org_id: int):
    return org_zone(session, org_id)


def _choices(session, org_id: int) -> dict:
    q = select(Employee).where(Employee.org_id == org_id, Employee.active == True)  # noqa: E712
    depts = session.exec(select(Employee.department).where(Employee.org_id == org_id).distinct()).all()
    offices = session.exec(select(Employee.office).where(Employee.org_id == org_id).distinct()).all()
    banners = session.exec(
        select(BannerImage).where(BannerImage.org_id == org_id).order_by(col(BannerImage.id).desc())
    ).all()
    return {
        "departments": sorted(d for d in depts if d),
        "offices": sorted(o for o in offices if o),
        "banners": banners,
        "sample_employees": session.exec(q.order_by(col(Employee.id)).limit(50)).all(),
    }


def _form_values(form) -> dict:
    return {
        "name": str(form.get("name", "")).strip(),
        "destination_url": str(form.get("destination_url", "")).strip(),
        "starts_at": str(form.get("starts_at", "")),
        "ends_at": str(form.get("ends_at", "")),
        "state": str(form.get("state", "draft")),
        "weight": str(form.get("weight", "1")) or "1",
        "priority": str(form.get("priority", "0")) or "0",
        "variants": read_rows(form),
        "everyone": form.get("everyone") == "on",
        "departments": form.getlist("departments"),
        "offices": form.getlist("offices"),
        "exclude_departments": form.getlist("exclude_departments"),
        "exclude_offices": form.getlist("exclude_offices"),
        "preview_employee": str(form.get("preview_employee", "")),
    }


def _audience(v: dict) -> dict:
    return {k: v[k] for k in ("everyone", "departments", "offices", "exclude_departments", "exclude_offices")}


def _values_of(c, zone) -> dict:
    a = c.audience
    return {
        "name": c.name,
        "destination_url": c.destination_url,
        "starts_at": local_input(c.starts_at, zone),
        "ends_at": local_input(c.ends_at, zone),
        # the form offers what people set: a running campaign is "scheduled" (published), not "active"
        "state": CampaignState.scheduled.value if c.state is CampaignState.active else c.state.value,
        "weight": c.weight,
        "priority": c.priority,
        "variants": rows_of(c.variants),
        "everyone": a.everyone,
        "departments": a.departments,
        "offices": a.offices,
        "exclude_departments": a.exclude_departments,
        "exclude_offices": a.exclude_offices,
        "preview_employee": "",
    }


@router.get("/app/campaigns")
def campaigns(session: DbSession, request: Request, state: str = "", page: int = 1, user: PageUser = Depends(COMMS)):
    rows = session.exec(select(Campaign).where(Campaign.org_id == user.org_id).order_by(col(Campaign.id).desc())).all()
    now = utcnow()
    variants = variants_of(session, [row_id(r) for r in rows])
    items = [
        campaign_public(session, campaign=r, settings=request.app.state.settings, at=now, variants=variants[row_id(r)])
        for r in rows
    ]
    if state in {s.value for s in CampaignState}:
        items = [c for c in items if c.state.value == state]
    pg = page_of(page, len(items))
    return render_page(
        request,
        "comms/campaigns.html",
        items=items[pg.offset : pg.offset + pg.size],
        page=pg,
        state=state,
        states=[s.value for s in CampaignState],
    )


def _edit_page(request, session, user, *, campaign_id=None, values, errors, status_code=200, variant_form=None):
    return render_page(
        request,
        "comms/campaign_edit.html",
        status_code=status_code,
        campaign_id=campaign_id,
        v=values,
        errors=errors,
        vf=variant_form or VariantForm(rows=with_keys(values["variants"])),
        max_variants=MAX_VARIANTS,
        figures=variant_figures(session, org_id=user.org_id, campaign_id=campaign_id) if campaign_id else None,
        states=[s.value for s in CampaignState if s is not CampaignState.active],
        zone=str(_zone(session, user.org_id)),
        **_choices(session, user.org_id),
    )


@router.get("/app/campaigns/new")
def new_campaign(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    values = {
        "name": "",
        "destination_url": "https://",
        "starts_at": local_input(utcnow(), _zone(session, user.org_id)),
        "ends_at": "",
        "state": "draft",
        "weight": 1,
        "priority": 0,
        "variants": [VariantRow()],
        "everyone": True,
        "departments": [],
        "offices": [],
        "exclude_departments": [],
        "exclude_offices": [],
        "preview_employee": "",
    }
    return _edit_page(request, session, user, values=values, errors={})


@router.get("/app/campaigns/{campaign_id}")
def edit_campaign(session: DbSession, request: Request, campaign_id: int, user: PageUser = Depends(COMMS)):
    row = get_campaign(session, org_id=user.org_id, campaign_id=campaign_id)
    c = campaign_public(session, campaign=row, settings=request.app.state.settings)
    return _edit_page(
        request, session, user, campaign_id=campaign_id, values=_values_of(c, _zone(session, user.org_id)), errors={}
    )


def _body(v: dict, zone) -> dict:
    return {
        "name": v["name"],
        "destination_url": v["destination_url"],
        "starts_at": parse_local(v["starts_at"], zone),
        "ends_at": parse_local(v["ends_at"], zone),
        "state": v["state"],
        "weight": v["weight"],
        "priority": v["priority"],
        "audience": _audience(v),
    }


@router.post("/app/campaigns/new")
def create(session: DbSession, request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)):
    return _save(session, request, user, None, _form_values(form))


@router.post("/app/campaigns/{campaign_id}")
def update(
    session: DbSession,
    request: Request,
    campaign_id: int,
    user: PageUser = Depends(COMMS),
    form: FormData = Depends(read_form),
):
    get_campaign(session, org_id=user.org_id, campaign_id=campaign_id)  # another organisation's id: 404 first
    return _save(session, request, user, campaign_id, _form_values(form))


def _save(session, request: Request, user: PageUser, campaign_id: int | None, v: dict):
    zone = _zone(session, user.org_id)
    variants, vf = check(v["variants"])
    errors: dict[str, str] = dict(vf.errors)
    try:
        body = _body(v, zone)
    except Invalid as exc:
        body, errors["starts_at"] = None, exc.message
    if body is not None:  # the other fields are checked too when a variant is wrong: every error at once
        payload = {**body, **({"variants": [x.model_dump() for x in variants]} if variants is not None else {})}
        model, model_errors = parse_form(CampaignIn if campaign_id is None else CampaignUpdate, payload)
        if "variants" in model_errors:  # not one field's fault: said above the form
            errors.setdefault("_form", model_errors.pop("variants"))
        errors.update(model_errors)
        if model is not None and variants is not None:
            try:
                if isinstance(model, CampaignIn):  # parsed as CampaignIn exactly when creating
                    row = create_campaign(session, org_id=user.org_id, body=model)
                else:
                    assert isinstance(model, CampaignUpdate) and campaign_id is not None
                    current = get_campaign(session, org_id=user.org_id, campaign_id=campaign_id)
                    row = update_campaign(session, campaign=current, body=model)
                return RedirectResponse(f"/app/campaigns?toast=saved#c{row.id}", status_code=303)
            except NotFound:
                raise
            except AppError as exc:
                session.rollback()
                errors = app_error(exc)
    vf.rows, vf.errors = with_keys(vf.rows), errors
    return _edit_page(
        request, session, user, campaign_id=campaign_id, values=v, errors=errors, status_code=422, variant_form=vf
    )


@router.post("/app/campaigns-banner")
def upload(session: DbSession, request: Request, banner: UploadFile, variant: int = 0, user: PageUser = Depends(COMMS)):
    """htmx: store the banner and answer that variant's banner picker with it selected (or the reason it was
    refused); the form's live preview refreshes."""
    data = banner.file.read(5 * 1024 * 1024 + 1)
    error, chosen = None, ""
    try:
        row = upload_banner(session, settings=request.app.state.settings, org_id=user.org_id, data=data)
        chosen = str(row.id)
    except AppError as exc:
        error = exc.message
    return render_page(
        request,
        "comms/_banner_picker.html",
        headers={"HX-Trigger": "variants-changed"},
        i=min(max(variant, 0), MAX_VARIANTS - 1),
        r=VariantRow(banner_id=chosen),
        upload_error=error,
        errors={},
        banners=_choices(session, user.org_id)["banners"],
    )


@router.post("/app/campaigns-variants")
def variants_editor(
    session: DbSession, request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)
):
    """htmx: the form's variants with one added or one removed (shares evened out); then the previews refresh."""
    rows = read_rows(form)
    removed = str(form.get("variant_remove", ""))
    rows = remove_row(rows, int(removed)) if removed.isdigit() else add_row(rows)
    return render_page(
        request,
        "comms/_variants.html",
        headers={"HX-Trigger": "variants-changed"},
        vf=VariantForm(rows=with_keys(rows)),
        errors={},
        max_variants=MAX_VARIANTS,
        banners=_choices(session, user.org_id)["banners"],
    )


@router.post("/app/campaigns-live")
def live(session: DbSession, request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)):
    """htmx, on every change of the form: how many active employees the audience reaches, and the preview."""
    from urllib.parse import urlencode

    v = _form_values(form)
    audience = _audience(v)
    # the kernel's audience, counted in SQL (the same rule the rotation applies per employee)
    chosen = Audience.load(audience, match=CAMPAIGN_MATCH).query(user.org_id)
    count = session.exec(select(func.count()).select_from(chosen.where(Employee.active == True).subquery())).one()  # noqa: E712
    total = session.exec(
        select(func.count()).select_from(Employee).where(Employee.org_id == user.org_id, Employee.active == True)  # noqa: E712
    ).one()
    previews = [
        (
            r.key,
            urlencode(
                {
                    "banner_id": r.banner_id,
                    "alt": r.alt,
                    "destination_url": r.url or v["destination_url"],
                    "employee_id": v["preview_employee"],
                }
            ),
        )
        for r in with_keys(v["variants"])
    ]
    return render_page(request, "comms/_live.html", count=count, total=total, previews=previews)


@router.get("/app/campaigns-preview")
def preview_frame(
    session: DbSession,
    request: Request,
    banner_id: str = "",
    alt: str = "",
    destination_url: str = "",
    employee_id: str = "",
    user: PageUser = Depends(COMMS),
):
    """The chosen employee's real signature with this banner (no tracked links are minted for a preview)."""
    from signatures.context import BannerData
    from signatures.service import render_employee

    q = select(Employee).where(Employee.org_id == user.org_id, Employee.active == True)  # noqa: E712
    emp = (
        session.get(Employee, int(employee_id))
        if employee_id.isdigit()
        else session.exec(q.order_by(col(Employee.id))).first()
    )
    if emp is None or emp.org_id != user.org_id:
        return frame_message(request, "No employee to preview with: import the directory first.")
    banner = None
    row = session.get(BannerImage, int(banner_id)) if banner_id.isdigit() else None
    if row is not None and row.org_id == user.org_id:
        w, h = display_size(row, campaign_settings(session, user.org_id).max_display_width)
        href = destination_url if destination_url.startswith(("https://", "http://")) else "#"
        banner = BannerData(
            image_url=asset_url(request.app.state.settings, row.asset), width=w, height=h, alt=alt or "", href=href
        )
    try:
        _v, rendered = render_employee(session, employee=emp, banner=banner)
    except AppError as exc:
        return frame_message(request, exc.message)
    return HTMLResponse(rendered.html, headers=FRAME_HEADERS)
