"""The comms page /app/feeds: subscriptions with their last status (and what to do when one keeps failing),
and the inbox of suggestions, each made into a newsletter article or dismissed in one click."""

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from starlette.datastructures import FormData

import advocacy.feeds.service as feeds
from advocacy.feeds.models import ItemState
from service.accounts.guard import PageUser, page_guard
from service.errors import AppError
from service.models import Role
from service.page_strings import N_
from service.page_views import parse_form, read_form
from service.pages import render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)
COMMS = page_guard(Role.comms)


def _render(session, request: Request, user: PageUser, *, errors=None, form=None, status_code=200):
    org_id = user.org_id
    feed_rows = feeds.list_feeds(session, org_id=org_id)
    return render_page(
        request, "advocacy/feeds.html", status_code=status_code,
        feeds=[feeds.feed_public(f) for f in feed_rows], names={f.id: f.title or f.url for f in feed_rows},
        inbox=feeds.list_items(session, org_id=org_id, state=ItemState.new),
        made=feeds.list_items(session, org_id=org_id, state=ItemState.article, limit=20),
        dismissed=feeds.list_items(session, org_id=org_id, state=ItemState.dismissed, limit=20),
        errors=errors or {}, form=form or {},
    )  # fmt: skip


@router.get("/app/feeds")
def feeds_page(session: DbSession, request: Request, user: PageUser = Depends(COMMS)):
    return _render(session, request, user)


@router.post("/app/feeds")
def subscribe(
    session: DbSession, request: Request, user: PageUser = Depends(COMMS), form: FormData = Depends(read_form)
):
    values = {"url": str(form.get("url", "")).strip(), "kind": str(form.get("kind", "company")),
              "title": str(form.get("title", "")).strip()}  # fmt: skip
    body, errors = parse_form(feeds.FeedIn, values)
    if body is not None:
        try:
            feed = feeds.add_feed(session, org_id=user.org_id, body=body)
            session.commit()  # saved before the first poll, which may take seconds and fail
            feeds.poll_now(session, org_id=user.org_id, feed_id=feed.id or 0, settings=request.app.state.settings)
            return RedirectResponse("/app/feeds?toast=created", status_code=303)
        except AppError as exc:
            session.rollback()
            errors = {"url": exc.message}
    return _render(session, request, user, errors=errors, form=values, status_code=422)


@router.post("/app/feeds/{feed_id}/poll")
def poll(session: DbSession, request: Request, feed_id: int, user: PageUser = Depends(COMMS)):
    feeds.poll_now(session, org_id=user.org_id, feed_id=feed_id, settings=request.app.state.settings)
    return RedirectResponse("/app/feeds?toast=saved", status_code=303)


@router.post("/app/feeds/{feed_id}/delete")
def unsubscribe(session: DbSession, feed_id: int, user: PageUser = Depends(COMMS)):
    feeds.delete_feed(session, org_id=user.org_id, feed_id=feed_id)
    return RedirectResponse("/app/feeds?toast=deleted", status_code=303)


@router.post("/app/feeds/items/{item_id}/article")
def make_article(session: DbSession, request: Request, item_id: int, user: PageUser = Depends(COMMS)):
    try:
        article = feeds.make_article(session, org_id=user.org_id, item_id=item_id, settings=request.app.state.settings)
    except AppError as exc:
        if exc.status_code == 404:
            raise
        session.rollback()
        return _render(session, request, user, errors={f"item-{item_id}": exc.message}, status_code=422)
    return RedirectResponse(f"/app/newsletter/articles/{article.id}?toast=created", status_code=303)


@router.post("/app/feeds/items/{item_id}/dismiss")
def dismiss(session: DbSession, item_id: int, user: PageUser = Depends(COMMS)):
    feeds.dismiss(session, org_id=user.org_id, item_id=item_id)
    return RedirectResponse("/app/feeds?toast=saved", status_code=303)


@router.post("/app/feeds/items/{item_id}/restore")
def restore(session: DbSession, item_id: int, user: PageUser = Depends(COMMS)):
    feeds.restore(session, org_id=user.org_id, item_id=item_id)
    return RedirectResponse("/app/feeds?toast=saved", status_code=303)


# The states the page shows as badges ({{ _(state) }}), listed for the catalog.
STATES = (N_("new"), N_("ok"), N_("not_modified"), N_("error"), N_("article"), N_("company"), N_("sector"))
