"""The signature layouts Relais ships, read from ``templates/signatures/<name>/{new,reply}.html``.

Each is a starting point: creating a template from a layout copies its sources into a new template version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "templates" / "signatures"


@dataclass(frozen=True, slots=True)
class Layout:
    name: str
    title: str
    description: str
    new_source: str
    reply_source: str


_META = {
    "classic": (
        "Classic",
        "Photo beside name, role, phones, email and website; office and address; social links; logo on a "
        "light tile; banner slot and disclaimer. Reply: name, role and direct lines.",
    ),
    "compact": (
        "Compact",
        "Logo beside a dense text block (name, role, company, phones, email, website and social links); "
        "banner slot and disclaimer. Reply: two lines.",
    ),
}


def _load() -> dict[str, Layout]:
    layouts = {}
    for name, (title, description) in _META.items():
        folder = TEMPLATE_DIR / name
        layouts[name] = Layout(
            name=name,
            title=title,
            description=description,
            new_source=(folder / "new.html").read_text(encoding="utf-8"),
            reply_source=(folder / "reply.html").read_text(encoding="utf-8"),
        )
    return layouts


LAYOUTS: dict[str, Layout] = _load()


def derived_reply() -> str:
    """What replies get when a template states no reply source: two short lines (the compact layout's)."""
    return LAYOUTS["compact"].reply_source
