"""Directory sources by provider. Each provider module is imported lazily, so syncing one provider never
loads the other's client libraries. An unknown provider is an error, never a fallback to another one."""

from collections.abc import Callable

from sqlmodel import Session

from service.connections.models import Provider, ProviderConnection
from service.connections.service import get_connection
from service.errors import Invalid
from service.settings import Settings


def _google(conn: ProviderConnection, settings: Settings, session: Session):
    from service.directory.sources.google import GoogleDirectory

    return GoogleDirectory.from_connection(conn, settings)


def _microsoft(conn: ProviderConnection, settings: Settings, session: Session):
    from service.directory.sources.microsoft import GraphDirectory

    return GraphDirectory.from_connection(conn, settings, session=session)


DIRECTORY_SOURCES: dict[Provider, Callable] = {Provider.google: _google, Provider.microsoft: _microsoft}


def make_directory(session: Session, *, org_id: int, provider: Provider | str, settings: Settings):
    """The `Directory` of the organisation's connection to `provider`."""
    try:
        build = DIRECTORY_SOURCES[Provider(provider)]
    except ValueError:
        names = ", ".join(p.value for p in DIRECTORY_SOURCES)
        raise Invalid(f"Unknown directory provider {provider!r}; choose one of {names}.") from None
    return build(get_connection(session, org_id=org_id, provider=Provider(provider)), settings, session)
