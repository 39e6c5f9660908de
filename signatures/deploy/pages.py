"""Deployment pages: start a dry run, read the per-mailbox table with a diff of each signature, apply it for
real, follow the progress live, filter outcomes with their reasons, retry what failed. Every action calls the
engine functions the deployments API calls (create_deployment, retry_failed, the same queued job)."""

import difflib

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlmodel import col, func, select
from starlette.datastructures import FormData

from service.accounts.guard import PageUser, page_guard
from service.directory.models import Employee
from service.errors import AppError, Conflict
from service.jobs import defer
from service.models import Role
from service.page_views import page_of, read_form
from service.pages import PageError, render_page
from service.session import DbSession
from signatures.deploy import engine as deploy_engine
from signatures.deploy.jobs import run_deployment
from signatures.deploy.models import Deployment, DeploymentItem, SignatureState

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)
PROVIDERS = ("microsoft", "google", "file")
OUTCOMES = ("added", "changed", "applied", "unchanged", "skipped", "failed")


def _get(session, org_id: int, deployment_id: int) -> Deployment:
    dep = session.get(Deployment, deployment_id)
    if dep is None or dep.org_id != org_id:
        raise PageError(404, "No such deployment", "It may belong to another organisation, or the link is wrong.")
    return dep


def _start(session, user: PageUser, *, provider: str, dry_run: bool, target_filter: dict) -> Deployment:
    if not dry_run and deploy_engine.has_open_deployment(session, org_id=user.org_id, provider=provider):
        raise Conflict(f"A {provider} deployment is already running; wait for it or follow its progress.")
    dep = deploy_engine.create_deployment(
        session,
        org_id=user.org_id,
        provider=provider,
        dry_run=dry_run,
        target_filter=target_filter,
        created_by=user.email,
    )
    defer(session, run_deployment, dep.id)
    return dep


@router.get("/app/deployments")
def deployments(session: DbSession, request: Request, page: int = 1, user: PageUser = Depends(IT)):
    total = session.exec(select(func.count()).select_from(Deployment).where(Deployment.org_id == user.org_id)).one()
    pg = page_of(page, total)
    rows = session.exec(
        select(Deployment)
        .where(Deployment.org_id == user.org_id)
        .order_by(col(Deployment.id).desc())
        .offset(pg.offset)
        .limit(pg.size)
    ).all()
    depts = session.exec(select(Employee.department).where(Employee.org_id == user.org_id).distinct()).all()
    return render_page(
        request,
        "it/deployments.html",
        rows=rows,
        page=pg,
        providers=PROVIDERS,
        departments=sorted(d for d in depts if d),
        errors={},
    )


@router.post("/app/deployments")
def start(session: DbSession, request: Request, user: PageUser = Depends(IT), form: FormData = Depends(read_form)):
    provider = str(form.get("provider", ""))
    target = {"departments": form.getlist("departments")} if form.getlist("departments") else {}
    if provider not in PROVIDERS:
        raise PageError(422, "Choose a provider", "Pick Microsoft 365, Google Workspace or the file export.")
    try:
        dep = _start(session, user, provider=provider, dry_run=form.get("apply") != "on", target_filter=target)
    except AppError as exc:
        raise PageError(exc.status_code, "The deployment did not start", exc.message) from None
    return RedirectResponse(f"/app/deployments/{dep.id}?toast=started", status_code=303)


@router.get("/app/deployments/{deployment_id}")
def deployment(
    session: DbSession,
    request: Request,
    deployment_id: int,
    outcome: str = "",
    page: int = 1,
    user: PageUser = Depends(IT),
):
    dep = _get(session, user.org_id, deployment_id)
    query = select(DeploymentItem).where(DeploymentItem.deployment_id == dep.id)
    if outcome in OUTCOMES:
        query = query.where(DeploymentItem.outcome == outcome)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    pg = page_of(page, total)
    items = session.exec(query.order_by(DeploymentItem.mailbox).offset(pg.offset).limit(pg.size)).all()
    template = (
        "it/_deployment_progress.html" if request.headers.get("hx-target") == "progress" else "it/deployment.html"
    )
    return render_page(
        request,
        template,
        dep=dep,
        progress=deploy_engine.progress_of(dep),
        items=items,
        page=pg,
        outcome=outcome,
        outcomes=OUTCOMES,
    )


@router.get("/app/deployments/{deployment_id}/diff")
def diff(session: DbSession, request: Request, deployment_id: int, mailbox: str, user: PageUser = Depends(IT)):
    """htmx: the signature last written to this mailbox against the one this deployment writes (line diff)."""
    dep = _get(session, user.org_id, deployment_id)
    item = session.exec(
        select(DeploymentItem).where(DeploymentItem.deployment_id == dep.id, DeploymentItem.mailbox == mailbox)
    ).first()
    if item is None:
        raise PageError(404, "No such mailbox", f"{mailbox} is not part of this deployment.")
    state = session.exec(
        select(SignatureState).where(
            SignatureState.org_id == dep.org_id,
            SignatureState.provider == dep.provider,
            SignatureState.address == mailbox.lower(),
        )
    ).first()
    before = (state.html if state else "").replace("><", ">\n<").splitlines()
    after = item.html.replace("><", ">\n<").splitlines()
    lines = list(
        difflib.unified_diff(
            before, after, "last written" if state else "(nothing yet)", "this deployment", lineterm="", n=2
        )
    )
    return render_page(request, "it/_diff.html", mailbox=mailbox, lines=lines)


@router.post("/app/deployments/{deployment_id}/apply")
def apply(session: DbSession, deployment_id: int, user: PageUser = Depends(IT)):
    """Write for real what this dry run previewed (same mailboxes filter)."""
    dep = _get(session, user.org_id, deployment_id)
    try:
        new = _start(session, user, provider=dep.provider, dry_run=False, target_filter=dict(dep.target_filter))
    except AppError as exc:
        raise PageError(exc.status_code, "The deployment did not start", exc.message) from None
    return RedirectResponse(f"/app/deployments/{new.id}?toast=started", status_code=303)


@router.post("/app/deployments/{deployment_id}/retry")
def retry(session: DbSession, deployment_id: int, user: PageUser = Depends(IT)):
    dep = _get(session, user.org_id, deployment_id)
    new = deploy_engine.retry_failed(session, deployment=dep, created_by=user.email)
    if not new.target_filter.get("emails"):
        session.rollback()
        raise PageError(409, "Nothing to retry", "This deployment has no failed or unattempted mailbox.")
    defer(session, run_deployment, new.id)
    return RedirectResponse(f"/app/deployments/{new.id}?toast=started", status_code=303)
