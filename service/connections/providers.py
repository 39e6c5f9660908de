"""Which module speaks to each provider's tenant (token, connection test). One entry per Provider: a provider
without an entry is an error, never a fallback to another provider's code."""

import importlib
from types import ModuleType

from service.connections.models import Provider
from service.errors import Invalid

CONNECTION_MODULES: dict[Provider, str] = {
    Provider.google: "service.connections.google",
    Provider.microsoft: "service.connections.microsoft",
}


def provider_names() -> str:
    return ", ".join(p.value for p in CONNECTION_MODULES)


def parse_provider(name: str) -> Provider:
    """`name` as a Provider, or a 422 naming the ones there are."""
    try:
        provider = Provider(name)
    except ValueError:
        provider = None
    if provider not in CONNECTION_MODULES:
        raise Invalid(f"Unknown provider {name!r}; choose one of {provider_names()}.")
    return provider


def connection_module(provider: Provider | str) -> ModuleType:
    """The module with `test_connection(row, settings)` (and the token client) for `provider`."""
    return importlib.import_module(CONNECTION_MODULES[parse_provider(str(provider))])
