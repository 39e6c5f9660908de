"""Mailboxes only get signatures whose images and tracked links mail clients can load: over https.

A fresh install serves its assets from the default `http://127.0.0.1:8000`, which is fine for trying things out
(templates save with a warning, dry runs and folder exports work) but never for a deployment that writes to
mailboxes. That is refused here, before the first write, with a sentence naming what to change.
"""

from sqlmodel import Session, select

from service.models import Brand
from service.settings import Settings
from signatures.deploy.targets.base import ConfigurationError


def https_problem(session: Session, *, org_id: int, settings: Settings) -> str | None:
    base = settings.public_base_url.rstrip("/")
    if not base.lower().startswith("https://"):
        return (
            f"RELAIS_PUBLIC_BASE_URL is {base}, not https: signatures would carry images and tracked links that "
            "mail clients block or cannot reach. Set RELAIS_PUBLIC_BASE_URL to the https address of this "
            "server, then deploy again (a dry run or a folder export works meanwhile)."
        )
    brand = session.exec(select(Brand).where(Brand.org_id == org_id)).first()
    logo = (brand.logo_url or "") if brand else ""
    if logo and not logo.lower().startswith("https://"):
        hint = ""
        if "/assets/" in logo:  # uploaded while the base URL was still http: same file, new address
            hint = f' (e.g. PATCH /api/brand {{"logo_url": "{base}/assets/{logo.rsplit("/assets/", 1)[1]}"}})'
        return (
            f"The brand's logo_url {logo!r} is not https: mail clients block it. Change logo_url{hint}, "
            "then deploy again."
        )
    return None


class HttpsGuard:
    """A target whose check() refuses to start (or, on a dry run, warns) when `https_problem` says so."""

    def __init__(self, target, problem: str, *, refuse: bool):
        self._target, self._problem, self._refuse = target, problem, refuse

    def __getattr__(self, name):
        return getattr(self._target, name)

    def check(self) -> list[str]:
        if self._refuse:
            raise ConfigurationError(self._problem)
        return [f"Before deploying for real: {self._problem}", *self._target.check()]
