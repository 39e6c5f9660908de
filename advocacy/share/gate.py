"""The charter gate's one call site in the share center: sharing unlocks once the employee accepted the
current charter version. The charter feature provides `advocacy.charter.gate.sharing_unlocked`; until it is
installed (built in parallel), nothing is locked."""

import importlib
import importlib.util

from sqlmodel import Session

CHARTER_GATE = "advocacy.charter.gate"


def sharing_unlocked(session: Session, org_id: int, employee_id: int) -> bool:
    try:
        installed = importlib.util.find_spec(CHARTER_GATE) is not None
    except ModuleNotFoundError:  # advocacy.charter itself is not there yet
        installed = False
    if not installed:
        return True
    return bool(importlib.import_module(CHARTER_GATE).sharing_unlocked(session, org_id, employee_id))
