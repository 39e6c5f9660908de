"""IT reviews the corrections employees propose to their directory details (/app/directory/corrections)."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

from portal import corrections
from service.accounts.guard import PageUser, page_guard
from service.errors import AppError, NotFound
from service.models import Role
from service.page_views import read_form
from service.pages import PageError, render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
IT = page_guard(Role.it)


def _page(session, request: Request, user: PageUser, *, errors: dict | None = None, status_code: int = 200):
    return render_page(
        request, "it/corrections.html", status_code=status_code,
        pending=corrections.pending_of_org(session, user.org_id),
        decided=corrections.decided_of_org(session, user.org_id), fields=corrections.FIELD_LABELS,
        synced=corrections.SYNCED_SOURCES, errors=errors or {},
    )  # fmt: skip


@router.get("/app/directory/corrections")
def review(session: DbSession, request: Request, user: PageUser = Depends(IT)):
    return _page(session, request, user)


def _not_found(exc: NotFound) -> PageError:
    return PageError(404, "No such correction", exc.message)


@router.post("/app/directory/corrections/{correction_id}/accept")
def accept(session: DbSession, request: Request, correction_id: int, user: PageUser = Depends(IT)):
    try:
        corrections.accept(session, org_id=user.org_id, correction_id=correction_id, by=user.email)
    except NotFound as exc:
        raise _not_found(exc) from None
    return RedirectResponse("/app/directory/corrections?toast=correction_accepted", status_code=303)


@router.post("/app/directory/corrections/{correction_id}/decline")
def decline(
    session: DbSession, request: Request, correction_id: int, user: PageUser = Depends(IT),
    form: FormData = Depends(read_form),
):  # fmt: skip
    try:
        corrections.decline(session, org_id=user.org_id, correction_id=correction_id, by=user.email,
                            reason=str(form.get("reason", ""))[:2000])  # fmt: skip
    except NotFound as exc:
        raise _not_found(exc) from None
    except AppError as exc:
        return _page(session, request, user, errors={correction_id: exc.message}, status_code=422)
    return RedirectResponse("/app/directory/corrections?toast=correction_declined", status_code=303)
