"""Optionally, an announced contest's winners in the next newsletter: a paragraph appended to the introduction of the
organisation's latest draft issue, through the newsletter's own service (comms can still edit it there).

Every recipient reads it, so it follows the employee pages' rule: winners who keep their rank private are "a
colleague". Written in the issue's language."""

from sqlmodel import Session, col, select

from advocacy.recognition.contests import announced_for
from advocacy.recognition.models import Contest
from newsletter.models import Issue, IssueStatus
from newsletter.service import IssueUpdate, update_issue
from service.errors import Conflict, Invalid
from service.page_strings import N_
from service.pages import translations


def results_text(session: Session, contest: Contest, language: str) -> str:
    t = translations(language).gettext
    lines = [t("Contest results: %(title)s") % {"title": contest.title}]
    for w in announced_for(session, contest, viewer_employee_id=None, staff=False):
        lines.append(f"{w.rank}. {w.name or t('a colleague')}")
    return "\n".join(lines)


def add_to_next_issue(session: Session, *, contest: Contest) -> Issue:
    if contest.announced_at is None:
        raise Invalid(N_("Announce the winners first, then add them to the newsletter."))
    issue = session.exec(
        select(Issue).where(Issue.org_id == contest.org_id, Issue.status == IssueStatus.draft)
        .order_by(col(Issue.id).desc())
    ).first()  # fmt: skip
    if issue is None or issue.id is None:
        raise Invalid(N_("There is no draft newsletter issue: create one, then add the results to it."))
    text = results_text(session, contest, issue.language)
    if text in issue.intro:
        raise Conflict(N_("These results are in the next newsletter's introduction already."))
    intro = f"{issue.intro.rstrip()}\n\n{text}" if issue.intro.strip() else text
    if len(intro) > 5000:  # IssueUpdate's limit
        raise Invalid(N_("The next newsletter's introduction is too long to add the results: shorten it first."))
    return update_issue(session, org_id=contest.org_id, issue_id=issue.id, body=IssueUpdate(intro=intro))


STRINGS = (N_("Contest results: %(title)s"),)
