"""Imports every table module so SQLModel.metadata (and Alembic) sees them all."""

import newsletter.models  # noqa: F401
import service.clicks.models  # noqa: F401
import service.connections.models  # noqa: F401
import service.links  # noqa: F401
import service.models  # noqa: F401
import signatures.campaigns.models  # noqa: F401
import signatures.deploy.models  # noqa: F401
import signatures.models  # noqa: F401
