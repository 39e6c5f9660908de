"""The employee's share center, /me/share: curated articles with ready-made texts carrying their own tracked
link, copy and share buttons, the article's image served by the app, their status and the leaders' example."""

from fastapi import APIRouter, Depends, Request

from advocacy.share.center import X_LIMIT, curated_article, share_center
from advocacy.share.gate import sharing_unlocked
from newsletter.images import image_response
from service.accounts.guard import PageUser, employee_guard
from service.clicks.optout import opted_out
from service.page_strings import N_
from service.pages import render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)

STATUS_LABELS = {"not_shared": N_("Not shared yet"), "shared": N_("Shared"), "confirmed": N_("Confirmed")}


@router.get("/me/share")
def share_page(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    employee_id = user.employee_id or 0
    cards = share_center(session, org_id=user.org_id, employee_id=employee_id, settings=request.app.state.settings)
    return render_page(
        request, "portal/share.html", cards=cards, x_limit=X_LIMIT, labels=STATUS_LABELS,
        unlocked=sharing_unlocked(session, user.org_id, employee_id),
        tracking_off=opted_out(session, employee_id=employee_id),
    )  # fmt: skip


@router.get("/me/share/{article_id}/image")
def article_image(
    session: DbSession, request: Request, article_id: int, download: bool = False,
    user: PageUser = Depends(employee_guard),
):  # fmt: skip
    """The article's image through the app (fetched once, cached); ?download=1 saves it."""
    article = curated_article(session, org_id=user.org_id, article_id=article_id)
    return image_response(request.app.state.settings, article_id, article.image_url, download=download)
