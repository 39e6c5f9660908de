"""The portal's overview page: where an employee lands after signing in."""

from fastapi import APIRouter, Depends, Request

from advocacy.charter.pages import charter_notice
from service.accounts.guard import PageUser, employee_guard
from service.directory.models import Employee
from service.pages import render_page
from service.session import DbSession

router = APIRouter(include_in_schema=False)


@router.get("/me")
def overview(session: DbSession, request: Request, user: PageUser = Depends(employee_guard)):
    employee = session.get(Employee, user.employee_id)
    return render_page(request, "portal/overview.html", employee=employee, charter=charter_notice(session, user))
