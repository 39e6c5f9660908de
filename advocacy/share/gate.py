"""The charter gate's one call site in the share center: sharing unlocks once the employee accepted the
current charter version (advocacy.charter.gate, the rule every sharing path asks). Its share buttons are also
detoured by the charter's kernel share gate, so a locked employee never shares through a stale page."""

from sqlmodel import Session

from advocacy.charter.gate import sharing_unlocked as charter_accepted


def sharing_unlocked(session: Session, org_id: int, employee_id: int) -> bool:
    return charter_accepted(session, org_id, employee_id)
