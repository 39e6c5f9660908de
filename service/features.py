"""The feature list: the one place where the kernel learns which features exist.

The app reads each feature's routers and middleware, the worker its task modules, and Alembic and the tests
its model modules. Entries are "module" or "module:attribute" strings, imported only when asked for, so the
kernel imports no feature package except through this list, and a tool that needs only settings stays cheap.
"""

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Feature:
    name: str
    routers: tuple[str, ...] = ()  # "module:router" — API and public routes
    pages: tuple[str, ...] = ()  # "module:router" — HTML pages (templates/pages/)
    tasks: tuple[str, ...] = ()  # modules whose import registers Huey tasks
    models: tuple[str, ...] = ()  # modules whose import registers tables on SQLModel.metadata
    middleware: tuple[str, ...] = ()  # "module:Class" — pure ASGI middleware, outermost last
    click_dimensions: tuple[str, ...] = ()  # "module:Dimension" — groupings the click figures offer
    click_labels: tuple[str, ...] = ()  # "module:Label" — names for a grouping's ids in the figures
    # "module:function(session, org_id) -> dict | None" — a panel on the comms dashboard: {"template": ..., ...}
    dashboard_panels: tuple[str, ...] = ()
    # "module:function(session, settings, *, org_id, employee_id, next_path) -> str | None" — asked before an
    # employee's share button goes on to the network: a same-site address to visit first (e.g. accept the charter)
    share_gates: tuple[str, ...] = ()
    demo: str | None = None  # "module:function(session, settings, org_id)" — the feature's part of the demo


FEATURES: tuple[Feature, ...] = (
    Feature(
        "core",
        routers=("service.routes:router", "service.assets:router", "service.api_docs:router"),
        pages=("service.page_views:brand_router", "service.admin_pages:router"),
        models=("service.models", "service.links"),
    ),
    Feature(
        "accounts",
        pages=("service.accounts.routes:router",),
        models=("service.accounts.models",),
        demo="service.accounts.demo:seed",
    ),
    Feature(
        "sso",
        routers=("service.sso.routes:router",),
        pages=("service.sso.pages:router",),
        models=("service.sso.models",),
    ),
    Feature(
        "connections",
        routers=("service.connections.routes:router",),
        pages=("service.connections.pages:router",),
        models=("service.connections.models",),
    ),
    Feature(
        "directory",
        routers=("service.directory.routes:router",),
        pages=("service.directory.pages:router", "service.directory.sync_pages:router"),
        tasks=("service.directory.jobs",),
        models=("service.directory.models",),
    ),
    Feature(
        "clicks",
        routers=("service.clicks.routes:router", "service.clicks.api:router"),
        pages=("service.clicks.pages:router",),
        tasks=("service.clicks.jobs",),
        models=("service.clicks.models",),
        middleware=("service.clicks.middleware:TrackingPaths",),
    ),
    Feature(
        "signatures",
        routers=(
            "signatures.routes:router",
            "signatures.campaigns.routes:router",
            "signatures.deploy.routes:router",
            "signatures.addin.routes:router",
            "signatures.addin.routes:well_known",
        ),
        pages=(
            "signatures.campaigns.pages:router",
            "signatures.campaigns.who_pages:router",
            "signatures.deploy.pages:router",
            "signatures.template_pages:router",
            "signatures.addin.pages:router",
        ),
        tasks=("signatures.deploy.jobs",),
        models=("signatures.models", "signatures.campaigns.models", "signatures.deploy.models"),
        click_dimensions=("signatures.campaigns.figures:VARIANT",),
        click_labels=("signatures.campaigns.figures:CAMPAIGN_NAMES",),
        demo="signatures.demo:seed",
    ),
    Feature(
        "relay",
        routers=("signatures.relay.routes:router",),
        pages=("signatures.relay.pages:router",),
        models=("signatures.relay.models",),
    ),
    Feature(
        "newsletter",
        routers=("newsletter.routes:router", "newsletter.routes:public"),
        pages=("newsletter.pages:router",),
        dashboard_panels=("newsletter.pages:last_issue_panel",),
        tasks=("newsletter.jobs",),
        models=("newsletter.models",),
        click_labels=("newsletter.figures:ARTICLE_TITLES",),
        demo="newsletter.demo:seed",
    ),
    Feature(
        "portal",
        pages=("portal.pages:router", "portal.review_pages:router"),
        models=("portal.models",),
        demo="portal.demo:seed",
    ),
    Feature(
        "feeds",
        routers=("advocacy.feeds.routes:router", "advocacy.feeds.demo:router"),
        pages=("advocacy.feeds.pages:router",),
        tasks=("advocacy.feeds.jobs",),
        models=("advocacy.feeds.models",),
        demo="advocacy.feeds.demo:seed",
    ),
    Feature("share", pages=("advocacy.share.pages:router",), demo="advocacy.share.demo:seed"),
    Feature(
        "recognition",
        routers=("advocacy.recognition.public:router",),
        pages=("advocacy.recognition.pages:router",),
        dashboard_panels=("advocacy.recognition.pages:ambassador_panel",),
        tasks=("advocacy.recognition.jobs",),
        models=("advocacy.recognition.models",),
        demo="advocacy.recognition.demo:seed",
    ),
    Feature(
        "charter",
        pages=("advocacy.charter.pages:router",),
        models=("advocacy.charter.models",),
        share_gates=("advocacy.charter.gate:share_detour",),
        demo="advocacy.charter.demo:seed",
    ),
    # Kernel guards around everything above: last, so they are the outermost layers.
    Feature(
        "security",
        middleware=(
            "service.request_limits:RequestLimits",
            "service.rate_limits:RateLimits",
            "service.security_headers:SecurityHeaders",
        ),
    ),
)


def load(ref: str) -> Any:
    """Import "module" (the module) or "module:attribute" (that attribute)."""
    module_name, _, attribute = ref.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def routers() -> Iterator[Any]:
    for feature in FEATURES:
        for ref in feature.routers + feature.pages:
            yield load(ref)


def middleware() -> Iterator[Any]:
    for feature in FEATURES:
        for ref in feature.middleware:
            yield load(ref)


def click_dimensions() -> Iterator[Any]:
    for feature in FEATURES:
        for ref in feature.click_dimensions:
            yield load(ref)


def click_labels() -> Iterator[Any]:
    for feature in FEATURES:
        for ref in feature.click_labels:
            yield load(ref)


def dashboard_panels() -> Iterator[Any]:
    for feature in FEATURES:
        for ref in feature.dashboard_panels:
            yield load(ref)


def share_gates() -> Iterator[Any]:
    for feature in FEATURES:
        for ref in feature.share_gates:
            yield load(ref)


def demo_seeds() -> Iterator[Any]:
    """Each feature's demo seeding, in the order of the list (signatures before the newsletter)."""
    for feature in FEATURES:
        if feature.demo:
            yield load(feature.demo)


def load_models() -> None:
    """Register every table on SQLModel.metadata (Alembic, create_all in tools, the tests' cleanup)."""
    for feature in FEATURES:
        for ref in feature.models:
            load(ref)


def load_tasks() -> None:
    """Register every queue task on the Huey instance (the worker, and the app that enqueues)."""
    for feature in FEATURES:
        for ref in feature.tasks:
            load(ref)
