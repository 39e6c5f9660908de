"""Write signatures to a folder: one `<email>.html` and `<email>.txt` per employee."""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, func, select

from service.directory.models import Employee
from service.errors import AppError
from service.settings import Settings
from signatures.models import SignatureKind
from signatures.renderer import SignatureRenderer


@dataclass
class ExportResult:
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # asked-for emails that are no active employee


def safe_name(email: str) -> str:
    name = "".join(ch if ch.isalnum() or ch in "@._+-" else "_" for ch in email.lower())
    return name.lstrip(".") or "_"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def export_signatures(
    session: Session, *, org_id: int, out: Path, kind: SignatureKind = SignatureKind.new,
    emails: list[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None, settings: Settings | None = None,
) -> ExportResult:  # fmt: skip
    """Write exactly what a deployment would write now (the campaign banner included)."""
    out.mkdir(parents=True, exist_ok=True)
    query = select(Employee).where(Employee.org_id == org_id, Employee.active == True)  # noqa: E712
    if emails:
        wanted = {e.lower() for e in emails}
        query = query.where(func.lower(Employee.email).in_(wanted))
    employees = session.exec(query.order_by(Employee.email)).all()
    result = ExportResult()
    if emails:
        found = {e.email.lower() for e in employees}
        result.unmatched = [e for e in emails if e.lower() not in found]
    renderer = SignatureRenderer(session, org_id=org_id, settings=settings)
    for done, emp in enumerate(employees, 1):
        try:
            _version, rendered = renderer.render(emp, kind)
        except AppError as exc:
            result.failed.append((emp.email, exc.message))
        else:
            write_atomic(out / f"{safe_name(emp.email)}.html", rendered.html)
            write_atomic(out / f"{safe_name(emp.email)}.txt", rendered.text)
            result.written += 1
        if on_progress:
            on_progress(done, len(employees))
    return result
