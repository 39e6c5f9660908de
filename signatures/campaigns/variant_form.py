"""The campaign page's A/B variants: read from the posted form, checked field by field, turned into the API's
VariantIn list, and shown back. On the page a variant's weight is its share of the campaign's signatures in
percent, so the shares must add up to 100; the stored weight is that share (the rotation reads weights as
proportions, so 50/50 and 1/1 serve alike)."""

import re
from dataclasses import dataclass, field
from typing import Any

from service.errors import Invalid
from service.links import check_destination
from service.page_strings import N_
from signatures.campaigns.models import VariantIn, VariantPublic

MAX_VARIANTS = 8
KEYS = "abcdefgh"
ROW = re.compile(r"^v-(\d)-(key|banner_id|alt|url|share)$")
KEY = re.compile(r"^[a-z0-9_-]{1,20}$")  # VariantIn's

NO_BANNER = N_("Choose or upload a banner.")
NO_ALT = N_("Say what the banner shows: mail clients that block images show this text.")
LONG_ALT = N_("Keep the banner text under 200 characters.")
BAD_SHARE = N_("Give a share between 1 and 100 %%.")
BAD_SUM = N_("The variants' shares must add up to 100 %%; they add up to %(total)s %%.")
BAD_URL = N_("Give an http(s) address, or leave it empty to use the campaign's.")


@dataclass
class VariantRow:
    key: str = ""
    banner_id: str = ""
    alt: str = ""
    url: str = ""
    share: str = "100"


@dataclass
class VariantForm:
    rows: list[VariantRow] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # "v-0-alt": sentence; "shares": the sum
    total: int | None = None  # the shares' sum, when BAD_SUM is reported


def even_shares(count: int) -> list[int]:
    """100 % split as evenly as whole numbers allow (the first ones get the remainder)."""
    base, extra = divmod(100, count)
    return [base + (1 if i < extra else 0) for i in range(count)]


def shares_of(weights: list[int]) -> list[int]:
    """Stored weights as whole percentages adding up to exactly 100 (largest remainder)."""
    total = sum(weights)
    exact = [w * 100 / total for w in weights]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda i: out[i] - exact[i])[: 100 - sum(out)]:
        out[i] += 1
    return out


def rows_of(variants: list[VariantPublic]) -> list[VariantRow]:
    shares = shares_of([v.weight for v in variants]) if variants else []
    return [
        VariantRow(key=v.key, banner_id=str(v.banner_id), alt=v.alt, url=v.destination_url or "", share=str(s))
        for v, s in zip(variants, shares, strict=True)
    ]


def read_rows(form: Any) -> list[VariantRow]:
    """The posted rows, in index order (v-0-…, v-1-…); at least one."""
    found: dict[int, VariantRow] = {}
    for name in form:
        match = ROW.match(name)
        if match:
            setattr(found.setdefault(int(match[1]), VariantRow()), match[2], str(form.get(name, "")).strip())
    rows = [found[i] for i in sorted(found)][:MAX_VARIANTS] or [VariantRow()]
    for r in rows:
        r.key = r.key if KEY.match(r.key) else ""  # a key the form never sent: the row is treated as new
    return rows


def with_keys(rows: list[VariantRow]) -> list[VariantRow]:
    """Rows without a key (new ones) get the first letter no other row uses: a variant keeps its key, and so its
    figures, whatever is added or removed around it."""
    used = {r.key for r in rows if r.key}
    out = []
    for r in rows:
        key = r.key or next(k for k in KEYS if k not in used)
        used.add(key)
        out.append(VariantRow(**{**r.__dict__, "key": key}))
    return out


def add_row(rows: list[VariantRow]) -> list[VariantRow]:
    """One more variant (up to 8), then an even split: people adjust the shares after."""
    if len(rows) >= MAX_VARIANTS:
        return rows
    out = with_keys([*with_keys(rows), VariantRow(key="")])
    return [VariantRow(**{**r.__dict__, "share": str(s)}) for r, s in zip(out, even_shares(len(out)), strict=True)]


def remove_row(rows: list[VariantRow], index: int) -> list[VariantRow]:
    if len(rows) <= 1 or not 0 <= index < len(rows):
        return rows
    out = [r for i, r in enumerate(rows) if i != index]
    return [VariantRow(**{**r.__dict__, "share": str(s)}) for r, s in zip(out, even_shares(len(out)), strict=True)]


def check(rows: list[VariantRow]) -> tuple[list[VariantIn] | None, VariantForm]:
    """The rows as VariantIn (None when a field is wrong) and the form to show back, with its errors."""
    form = VariantForm(rows=rows)
    shares: list[int] = []
    for i, r in enumerate(rows):
        if not r.banner_id.isdigit():
            form.errors[f"v-{i}-banner_id"] = NO_BANNER
        if not r.alt:
            form.errors[f"v-{i}-alt"] = NO_ALT
        elif len(r.alt) > 200:
            form.errors[f"v-{i}-alt"] = LONG_ALT
        if r.url:
            try:
                check_destination(r.url)
            except Invalid:
                form.errors[f"v-{i}-url"] = BAD_URL
        share = int(r.share) if r.share.isdigit() else 0
        if not 1 <= share <= 100:
            form.errors[f"v-{i}-share"] = BAD_SHARE
        shares.append(share)
    if not any(k.endswith("-share") for k in form.errors) and sum(shares) != 100:
        form.errors["shares"], form.total = BAD_SUM, sum(shares)
    if form.errors:
        return None, form
    variants = [
        VariantIn(banner_id=int(r.banner_id), alt=r.alt, weight=s, key=r.key, destination_url=r.url or None)
        for r, s in zip(with_keys(rows), shares, strict=True)
    ]
    return variants, form
