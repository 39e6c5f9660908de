"""Write signatures to a folder: one `<email>.html` and `<email>.txt` per employee."""

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlmodel import Session, col, select

from service.directory.models import Employee
from service.errors import AppError
from signatures import service as sig
from signatures.models import Variant


@dataclass
class ExportResult:
    written: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)


def safe_name(email: str) -> str:
    name = "".join(ch if ch.isalnum() or ch in "@._+-" else "_" for ch in email.lower())
    return name.lstrip(".") or "_"


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def export_signatures(
    session: Session, *, org_id: int, out: Path, variant: Variant = Variant.new, emails: list[str] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> ExportResult:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    query = select(Employee).where(Employee.org_id == org_id, Employee.active == True)  # noqa: E712
    if emails:
        query = query.where(col(Employee.email).in_(emails))
    employees = session.exec(query.order_by(Employee.email)).all()
    result = ExportResult()
    for done, emp in enumerate(employees, 1):
        try:
            _version, rendered = sig.render_employee(session, employee=emp, variant=variant)
        except AppError as exc:
            result.failed.append((emp.email, exc.message))
        else:
            write_atomic(out / f"{safe_name(emp.email)}.html", rendered.html)
            write_atomic(out / f"{safe_name(emp.email)}.txt", rendered.text)
            result.written += 1
        if on_progress:
            on_progress(done, len(employees))
    return result
