"""What a deployment changes in one mailbox, as an HTML side-by-side diff (the API's and `relais deploy --diff`)."""

import difflib

from sqlmodel import Session, select

from service.pages import render
from signatures.deploy.models import Deployment, DeploymentItem, SignatureState


def mailbox_diff(session: Session, dep: Deployment, item: DeploymentItem, *, base_url: str) -> str:
    """Last signature written to the mailbox vs. the one this deployment writes, as a standalone HTML page."""
    state = session.exec(select(SignatureState).where(
        SignatureState.org_id == dep.org_id, SignatureState.provider == dep.provider,
        SignatureState.address == item.mailbox.lower())).first()  # fmt: skip
    before = (state.html if state else "").replace("><", ">\n<").splitlines()
    after = item.html.replace("><", ">\n<").splitlines()
    table = difflib.HtmlDiff(wrapcolumn=100).make_table(
        before, after, "last written" if state else "(nothing yet)", "this deployment", context=True, numlines=2
    )
    return render("deploy/diff.html", mailbox=item.mailbox, table=table, base=base_url.rstrip("/"))
