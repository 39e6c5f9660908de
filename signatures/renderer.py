"""The ONE call that renders an employee's signature as deployments write it: export (`relais render`),
previews, the API and deployments all go through `SignatureRenderer`, so what anyone sees is what a mailbox gets
— template by assignment, the brand, and the banner the campaign rotation gives the employee at that moment."""

from datetime import datetime
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from service.db import row_id, utcnow
from service.directory.models import Employee, EmployeeGroup
from service.errors import AppError
from service.settings import Settings, get_settings
from signatures.context import BannerData, BrandData
from signatures.models import SignatureKind, TemplateVersion
from signatures.rendering import RenderedSignature
from signatures.service import employee_data, get_version, org_brand, render_version, template_for

if TYPE_CHECKING:  # campaigns build on signatures: imported late at run time
    from signatures.campaigns.service import Rotation


class SignatureRenderer:
    """Renders many employees of one organisation at one moment. What they share is read once: the brand, the
    rotation, everyone's groups, and the template version of each (department, groups) combination —
    `template_for` depends on nothing else."""

    def __init__(self, session: Session, *, org_id: int, at: datetime | None = None, settings: Settings | None = None):
        self.session, self.org_id = session, org_id
        self.at = at or utcnow()
        self.settings = settings or get_settings()
        self._brand: BrandData | None = None
        self._rotation: Rotation | None = None
        self._groups: dict[int, list[str]] | None = None
        self._versions: dict[tuple, TemplateVersion | AppError] = {}
        self._banners: dict[int, BannerData | None] = {}

    @property
    def brand(self) -> BrandData:
        if self._brand is None:
            self._brand = org_brand(self.session, self.org_id)
        return self._brand

    def groups_of(self, employee: Employee) -> list[str]:
        if self._groups is None:
            self._groups = {}
            for employee_id, key in self.session.exec(select(EmployeeGroup.employee_id, EmployeeGroup.group_key)
                                                      .where(EmployeeGroup.org_id == self.org_id)).all():  # fmt: skip
                self._groups.setdefault(employee_id, []).append(key)
        return self._groups.get(row_id(employee), [])

    def version_for(self, employee: Employee) -> TemplateVersion:
        """The current version of the template the employee's assignments give (raises AppError if none)."""
        key = (employee.department, tuple(sorted(self.groups_of(employee))))
        if key not in self._versions:
            try:
                template = template_for(self.session, employee=employee)
                self._versions[key] = get_version(self.session, template=template)
            except AppError as exc:
                self._versions[key] = exc
        found = self._versions[key]
        if isinstance(found, AppError):
            raise found
        return found

    def banner_for(self, employee: Employee) -> BannerData | None:
        employee_id = row_id(employee)
        if employee_id not in self._banners:
            if self._rotation is None:
                from signatures.campaigns.service import Rotation  # campaigns build on signatures: import late

                self._rotation = Rotation(self.session, org_id=self.org_id, at=self.at)
                self._rotation.preload_groups()
            self._banners[employee_id] = self._rotation.banner_for(employee, base_settings=self.settings)
        return self._banners[employee_id]

    def render(
        self, employee: Employee, kind: SignatureKind = SignatureKind.new, *, version: TemplateVersion | None = None
    ) -> tuple[TemplateVersion, RenderedSignature]:
        """Raises AppError (no template applies, the template fails for this employee)."""
        version = version or self.version_for(employee)
        rendered = render_version(
            version=version,
            kind=kind,
            employee=employee_data(employee),
            brand=self.brand,
            banner=self.banner_for(employee),
        )
        return version, rendered
