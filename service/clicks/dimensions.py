"""Groupings that features add to the click figures (the kernel knows day, employee, channel...; a feature
knows its own tables, e.g. the campaigns' A/B variant). Declared in service.features as `click_dimensions`."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dimension:
    name: str
    column: Callable[[], Any]  # the SQL expression to group by (labelled by the caller)
    join: Callable[[Any, Any], Any]  # (query, click or impression table) -> the query with the joins it needs
    impressions: bool = True  # also meaningful for image loads
    source: str = "link_id"  # the click summary's column the join hangs off (the summary is grouped by it first)


@dataclass(frozen=True)
class Label:
    """Names a grouping's ids in the figures, so people read "Spring Expo" and not "campaign 3"."""

    group: str  # the grouping whose ids it names ("campaign", "article")
    column: str  # the column it adds to each row ("campaign_name", "article_title")
    names: Callable[[Any, int, list[int]], dict[int, str]]  # (session, org_id, ids) -> {id: name}
