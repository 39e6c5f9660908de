"""Deployments and provider connections over HTTP (thin; the logic is in engine, planning, connections)."""

from datetime import datetime

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, field_validator
from sqlmodel import Session, col, func, select

from service.auth import Principal, requires
from service.errors import Conflict, NotFound
from service.jobs import defer
from service.models import Role
from service.session import DbSession
from service.tenancy import get_owned
from signatures.deploy import engine as deploy_engine
from signatures.deploy.diffs import mailbox_diff
from signatures.deploy.jobs import run_deployment
from signatures.deploy.models import Deployment, DeploymentItem
from signatures.deploy.registry import MAILBOX_TARGETS, target_names, targets_help

router = APIRouter(prefix="/api", tags=["deployments"])
IT = requires(Role.it)


class DeploymentIn(BaseModel):
    provider: str = Field(description=f"The target: {targets_help()}.")
    dry_run: bool = Field(True, description="Preview first: nothing is written.")
    departments: list[str] | None = None
    offices: list[str] | None = None
    groups: list[str] | None = None
    emails: list[str] | None = None
    force: bool = Field(False, description="Rewrite every mailbox, even those already up to date.")

    @field_validator("provider")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if value not in MAILBOX_TARGETS:
            raise ValueError(f"unknown target {value!r}; choose one of {target_names()}")
        return value


class DeploymentPublic(BaseModel):
    id: int
    provider: str
    dry_run: bool
    status: str
    reason: str
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    target_filter: dict
    template_versions: list
    total: int
    done: int
    writes: int
    counts: dict
    eta_seconds: float | None = None
    message: str


class ItemPublic(BaseModel):
    mailbox: str
    state: str
    outcome: str | None
    reason: str
    addresses: list
    attempts: int
    writes: int


class ItemPage(BaseModel):
    total: int
    items: list[ItemPublic]


def _public(dep: Deployment) -> DeploymentPublic:
    public = DeploymentPublic.model_validate(dep, from_attributes=True)
    public.eta_seconds = deploy_engine.progress_of(dep).eta_seconds
    return public


def _get(session: Session, org_id: int, deployment_id: int) -> Deployment:
    return get_owned(session, Deployment, deployment_id, org_id=org_id, label="deployment")


@router.post(
    "/deployments",
    response_model=DeploymentPublic,
    status_code=202,
    summary="Start a deployment (a dry run by default); follow it with GET /api/deployments/{id}",
)
def start(session: DbSession, body: DeploymentIn, p: Principal = Depends(IT)):
    if not body.dry_run and deploy_engine.has_open_deployment(session, org_id=p.org_id, provider=body.provider):
        raise Conflict(f"A {body.provider} deployment is already running; wait for it or follow its progress.")
    target_filter = body.model_dump(include={"departments", "offices", "groups", "emails"}, exclude_none=True)
    if body.force:
        target_filter["force"] = True
    dep = deploy_engine.create_deployment(
        session,
        org_id=p.org_id,
        provider=body.provider,
        dry_run=body.dry_run,
        target_filter=target_filter,
        created_by=p.name,
    )
    defer(session, run_deployment, dep.id)
    return _public(dep)


@router.get("/deployments", response_model=list[DeploymentPublic])
def list_deployments(session: DbSession, limit: int = Query(50, ge=1, le=500), p: Principal = Depends(IT)):
    rows = session.exec(
        select(Deployment).where(Deployment.org_id == p.org_id).order_by(col(Deployment.id).desc()).limit(limit)
    ).all()
    return [_public(d) for d in rows]


@router.get(
    "/deployments/{deployment_id}",
    response_model=DeploymentPublic,
    summary="Progress (counts by outcome, ETA) and the audit record",
)
def get_deployment(session: DbSession, deployment_id: int, p: Principal = Depends(IT)):
    return _public(_get(session, p.org_id, deployment_id))


@router.get("/deployments/{deployment_id}/items", response_model=ItemPage, summary="Per-mailbox results")
def list_items(
    session: DbSession,
    deployment_id: int,
    outcome: str | None = Query(
        None, description="applied, unchanged, skipped, deferred, unconfirmed, failed (dry run: added, changed)"
    ),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
    p: Principal = Depends(IT),
):
    dep = _get(session, p.org_id, deployment_id)
    query = select(DeploymentItem).where(DeploymentItem.deployment_id == dep.id)
    if outcome:
        query = query.where(DeploymentItem.outcome == outcome)
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    rows = session.exec(query.order_by(DeploymentItem.mailbox).offset(offset).limit(limit)).all()
    return ItemPage(total=total, items=[ItemPublic.model_validate(r, from_attributes=True) for r in rows])


@router.get(
    "/deployments/{deployment_id}/diff",
    response_class=HTMLResponse,
    summary="HTML diff of one mailbox: last signature written vs. the one this deployment writes",
)
def diff(session: DbSession, request: Request, deployment_id: int, mailbox: str, p: Principal = Depends(IT)):
    dep = _get(session, p.org_id, deployment_id)
    item = session.exec(
        select(DeploymentItem).where(DeploymentItem.deployment_id == dep.id, DeploymentItem.mailbox == mailbox)
    ).first()
    if item is None:
        raise NotFound(f"{mailbox} is not part of deployment {deployment_id}.")
    return HTMLResponse(mailbox_diff(session, dep, item, base_url=request.app.state.settings.public_base_url))


@router.post(
    "/deployments/{deployment_id}/retry",
    response_model=DeploymentPublic,
    status_code=202,
    summary="Deploy again only the mailboxes that failed or were not attempted",
)
def retry(session: DbSession, deployment_id: int, p: Principal = Depends(IT)):
    dep = _get(session, p.org_id, deployment_id)
    new = deploy_engine.retry_failed(session, deployment=dep, created_by=p.name)
    if not new.target_filter.get("emails"):
        raise Conflict(f"Deployment {deployment_id} has no failed or unattempted mailbox to retry.")
    defer(session, run_deployment, new.id)
    return _public(new)
