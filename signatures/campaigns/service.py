"""Campaign logic without HTTP: banners, campaigns, rotation and the banner each employee's signature carries.

Rotation rule (docs/campaigns-and-clicks.md): for a moment `at`, the rotation period is the local day or
ISO week (Monday 00:00) in the organisation's timezone, numbered `p`. The eligible campaigns are the
published ones running at `at` whose audience includes the employee; only the highest priority tier among
them counts. Each employee has a fixed offset `u` in [0, 1) (a hash of their id); the period picks the point
`x = frac(u + p·φ)` (φ = the golden ratio's fractional part, a low-discrepancy stride) and the campaign whose
slice of [0, 1) contains `x`, slices sized by weight and ordered by campaign id. So the choice is
deterministic within a period, every campaign's share of periods tracks its weight for each employee, and
in any one period employees are spread across campaigns in proportion to the weights. A/B variants are
chosen the same way with an independent stride (√2 − 1) and a per-campaign offset. When nothing applies,
the organisation's default campaign (if any, and neither draft, paused nor ended) is shown.
"""

import hashlib
import math
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from service.assets import asset_url, store_asset
from service.clicks.models import TrackingOptOut, TrackingSettings
from service.db import get_existing, row_id, utcnow
from service.directory.audience import Match
from service.directory.models import Employee, EmployeeGroup
from service.directory.service import check_places
from service.errors import Conflict, Invalid, NotFound
from service.links import Channel, check_destination, mint, url_for
from service.models import Organisation
from service.sentences import N_
from service.settings import Settings, get_settings
from service.tenancy import get_owned
from signatures.campaigns.images import check_banner
from signatures.campaigns.models import (
    DEFAULT_UTM,
    Audience,
    BannerImage,
    Campaign,
    CampaignIn,
    CampaignLink,
    CampaignPublic,
    CampaignSettings,
    CampaignState,
    CampaignUpdate,
    CampaignVariant,
    RotationPeriod,
    VariantIn,
    VariantPublic,
)
from signatures.context import BannerData

PHI = (math.sqrt(5) - 1) / 2  # 0.618...: the golden-ratio stride
SQRT2 = math.sqrt(2) - 1  # 0.414...: an independent stride for variants
LIVE = (CampaignState.scheduled, CampaignState.active)
# Campaign audiences match ANY of their criteria unless they say otherwise, then exclusions win.
CAMPAIGN_MATCH = Match.any


# ---------------------------------------------------------------- settings


def campaign_settings(session: Session, org_id: int) -> CampaignSettings:
    row = session.get(CampaignSettings, org_id)
    return row if row is not None else CampaignSettings(org_id=org_id, utm_defaults=dict(DEFAULT_UTM))


def save_campaign_settings(session: Session, *, org_id: int, changes: dict) -> CampaignSettings:
    row = session.get(CampaignSettings, org_id) or CampaignSettings(org_id=org_id, utm_defaults=dict(DEFAULT_UTM))
    if changes.get("default_campaign_id") is not None:
        get_campaign(session, org_id=org_id, campaign_id=changes["default_campaign_id"])
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


# ---------------------------------------------------------------- banners


def upload_banner(session: Session, *, settings: Settings, org_id: int, data: bytes) -> BannerImage:
    checked = check_banner(data)
    name = store_asset(settings, data, checked.ext)
    row = session.exec(select(BannerImage).where(BannerImage.org_id == org_id, BannerImage.asset == name)).first()
    if row is None:
        row = BannerImage(org_id=org_id, asset=name, width=checked.width, height=checked.height, size=checked.size)
        session.add(row)
        session.flush()
    return row


def _banner(session: Session, org_id: int, banner_id: int) -> BannerImage:
    try:
        return get_owned(session, BannerImage, banner_id, org_id=org_id, label="banner")
    except NotFound as exc:  # a body field, not the path: the request is what's wrong
        raise Invalid(N_("%(message)s Upload it first (POST /api/banners).", message=exc.message)) from None


def display_size(banner: BannerImage, max_width: int) -> tuple[int, int]:
    """High-density banners are shown at most `max_width` px wide, keeping the aspect ratio."""
    if banner.width <= max_width:
        return banner.width, banner.height
    return max_width, max(1, round(banner.height * max_width / banner.width))


# ---------------------------------------------------------------- campaigns


def get_campaign(session: Session, *, org_id: int, campaign_id: int) -> Campaign:
    return get_owned(session, Campaign, campaign_id, org_id=org_id, label="campaign")


def _check_dates(starts_at: datetime, ends_at: datetime | None) -> None:
    if ends_at is not None and ends_at <= starts_at:
        raise Invalid(N_("The campaign must end after it starts (ends_at > starts_at)."))


def _stored_state(state: CampaignState) -> CampaignState:
    return CampaignState.scheduled if state is CampaignState.active else state


def _set_variants(session: Session, campaign: Campaign, variants: list[VariantIn]) -> None:
    if not variants:
        raise Invalid(N_("A campaign needs a banner: give 'banner_id' and 'alt', or 'variants'."))
    keys = [v.key or "abcdefgh"[i] for i, v in enumerate(variants)]
    if len(set(keys)) != len(keys):
        raise Invalid(N_("Variant keys must be different from each other."))
    for v in variants:
        _banner(session, campaign.org_id, v.banner_id)
    pages = [check_destination(v.destination_url) if v.destination_url else None for v in variants]
    existing = {
        v.key: v for v in session.exec(select(CampaignVariant).where(CampaignVariant.campaign_id == campaign.id)).all()
    }
    for key, v, page in zip(keys, variants, pages, strict=True):
        row = existing.pop(key, None) or CampaignVariant(campaign_id=row_id(campaign), key=key, banner_id=0, alt="")
        row.banner_id, row.alt, row.weight, row.destination_url = v.banner_id, v.alt.strip(), v.weight, page
        session.add(row)
    for row in existing.values():
        session.delete(row)
    session.flush()


def _check_audience(session: Session, org_id: int, audience) -> None:
    check_places(session, org_id=org_id, departments=audience.departments, offices=audience.offices)


def create_campaign(session: Session, *, org_id: int, body: CampaignIn) -> Campaign:
    if session.exec(select(Campaign).where(Campaign.org_id == org_id, Campaign.name == body.name)).first():
        raise Conflict(N_("A campaign named %(name)r already exists; choose another name.", name=body.name))
    _check_dates(body.starts_at, body.ends_at)
    _check_audience(session, org_id, body.audience)
    variants = body.variants
    if variants is None:
        if body.banner_id is None or not body.alt:
            raise Invalid(N_("A campaign needs a banner: give 'banner_id' and 'alt', or 'variants'."))
        variants = [VariantIn(banner_id=body.banner_id, alt=body.alt)]
    campaign = Campaign(
        org_id=org_id, name=body.name.strip(), state=_stored_state(body.state),
        destination_url=check_destination(body.destination_url), utm=body.utm, starts_at=body.starts_at,
        ends_at=body.ends_at, audience=body.audience.model_dump(mode="json"), weight=body.weight,
        priority=body.priority, salt=secrets.token_hex(8),
    )  # fmt: skip
    session.add(campaign)
    session.flush()
    _set_variants(session, campaign, variants)
    return campaign


def update_campaign(session: Session, *, campaign: Campaign, body: CampaignUpdate) -> Campaign:
    changes = body.model_dump(exclude_unset=True)
    if (
        "name" in changes
        and changes["name"] != campaign.name
        and session.exec(
            select(Campaign).where(Campaign.org_id == campaign.org_id, Campaign.name == changes["name"])
        ).first()
    ):
        raise Conflict(N_("A campaign named %(name)r already exists; choose another name.", name=changes["name"]))
    if "destination_url" in changes:
        campaign.destination_url = check_destination(changes["destination_url"])
    for key in ("name", "starts_at", "ends_at", "weight", "priority", "utm"):
        if key in changes:
            setattr(campaign, key, changes[key])
    if body.audience is not None:
        _check_audience(session, campaign.org_id, body.audience)
        campaign.audience = body.audience.model_dump(mode="json")
    if body.state is not None:
        campaign.state = _stored_state(body.state)
    _check_dates(campaign.starts_at, campaign.ends_at)
    if body.variants is not None:
        _set_variants(session, campaign, body.variants)
    campaign.updated_at = utcnow()
    session.add(campaign)
    session.flush()
    return campaign


def delete_campaign(session: Session, *, campaign: Campaign) -> None:
    if campaign.state is not CampaignState.draft:
        raise Conflict(
            N_(
                "Only draft campaigns can be deleted (their clicks would lose their campaign); "
                "set its state to 'ended' instead."
            )
        )
    for v in session.exec(select(CampaignVariant).where(CampaignVariant.campaign_id == campaign.id)).all():
        session.delete(v)
    session.flush()
    session.delete(campaign)
    settings = session.get(CampaignSettings, campaign.org_id)
    if settings is not None and settings.default_campaign_id == campaign.id:
        settings.default_campaign_id = None
        session.add(settings)
    session.flush()


def variants_of(session: Session, campaign_ids: list[int]) -> dict[int, list[CampaignVariant]]:
    out: dict[int, list[CampaignVariant]] = {cid: [] for cid in campaign_ids}
    if campaign_ids:
        rows = session.exec(
            select(CampaignVariant)
            .where(col(CampaignVariant.campaign_id).in_(campaign_ids))
            .order_by(col(CampaignVariant.campaign_id), col(CampaignVariant.key))
        ).all()
        for row in rows:
            out[row.campaign_id].append(row)
    return out


def tracked_destination(campaign: Campaign, variant: CampaignVariant, utm_defaults: dict) -> str:
    """The variant's page (else the campaign's) with UTM parameters: defaults, then the campaign's overrides
    ('' removes one). Parameters already in the URL win. {campaign} and {variant} are replaced by the campaign's
    slug and the variant's key."""
    params = {**utm_defaults, **campaign.utm}
    slug = "-".join("".join(c if c.isalnum() else " " for c in campaign.name.lower()).split()) or str(campaign.id)
    parts = urlsplit(variant.destination_url or campaign.destination_url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    for key, value in params.items():
        if value and key not in present:
            query.append((key, value.replace("{campaign}", slug).replace("{variant}", variant.key)))
    return urlunsplit(parts._replace(query=urlencode(query)))


def campaign_public(session: Session, *, campaign: Campaign, settings: Settings, at: datetime | None = None,
                    variants: list[CampaignVariant] | None = None) -> CampaignPublic:  # fmt: skip
    cs = campaign_settings(session, campaign.org_id)
    if variants is None:
        variants = variants_of(session, [row_id(campaign)])[row_id(campaign)]
    out = []
    for v in variants:
        banner = get_existing(session, BannerImage, v.banner_id)  # a variant's banner can't be deleted
        w, h = display_size(banner, cs.max_display_width)
        out.append(
            VariantPublic(
                id=v.id,
                key=v.key,
                banner_id=v.banner_id,
                image_url=asset_url(settings, banner.asset),
                width=w,
                height=h,
                alt=v.alt,
                weight=v.weight,
                destination_url=v.destination_url,
                destination=tracked_destination(campaign, v, cs.utm_defaults),
            )
        )
    return CampaignPublic(
        id=campaign.id, name=campaign.name, state=campaign.effective_state(at or utcnow()),
        destination_url=campaign.destination_url, utm=campaign.utm, starts_at=campaign.starts_at,
        ends_at=campaign.ends_at, audience=audience_of(campaign), weight=campaign.weight,
        priority=campaign.priority, variants=out, is_default=cs.default_campaign_id == campaign.id,
        created_at=campaign.created_at, updated_at=campaign.updated_at,
    )  # fmt: skip


# ---------------------------------------------------------------- rotation


def _unit(text: str) -> float:
    """A stable number in [0, 1) for a string."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2**64


def org_zone(session: Session, org_id: int) -> ZoneInfo:
    org = session.get(Organisation, org_id)
    try:
        return ZoneInfo(org.timezone if org and org.timezone else "UTC")
    except Exception:
        return ZoneInfo("UTC")


def period_bounds(at: datetime, *, tz: ZoneInfo, period: RotationPeriod) -> tuple[int, datetime, datetime]:
    """(period index, start, end) of the rotation period containing `at`; boundaries are local midnights."""
    if at.tzinfo is None:
        raise ValueError("rotation needs a timezone-aware datetime")
    local_day = at.astimezone(tz).date()
    if period is RotationPeriod.weekly:
        first = local_day - timedelta(days=local_day.weekday())
        index, length = (first.toordinal() - 1) // 7, 7
    else:
        first, index, length = local_day, local_day.toordinal(), 1

    def midnight(d: date) -> datetime:
        return datetime.combine(d, time(0), tzinfo=tz).astimezone(UTC)

    return index, midnight(first), midnight(first + timedelta(days=length))


def _weighted(items: list, weights: list[int], x: float):
    total = sum(weights)
    point = x * total
    acc = 0.0
    for item, w in zip(items, weights, strict=True):
        acc += w
        if point < acc:
            return item
    return items[-1]


def top_tier(candidates: list[Campaign]) -> list[Campaign]:
    """The eligible campaigns that compete: those of the highest priority, by id."""
    if not candidates:
        return []
    top = max(c.priority for c in candidates)
    return sorted((c for c in candidates if c.priority == top), key=row_id)


def choose(candidates: list[Campaign], *, employee_id: int, period_index: int) -> Campaign | None:
    """The rotation's pick among eligible campaigns (see the module docstring)."""
    tier = top_tier(candidates)
    if not tier:
        return None
    x = (_unit(f"employee:{employee_id}") + period_index * PHI) % 1.0
    return _weighted(tier, [c.weight for c in tier], x)


def choose_variant(campaign: Campaign, variants: list[CampaignVariant], *, employee_id: int,
                   period_index: int) -> CampaignVariant | None:  # fmt: skip
    if not variants:
        return None
    if len(variants) == 1:
        return variants[0]
    y = (_unit(f"variant:{campaign.salt}:{employee_id}") + period_index * SQRT2) % 1.0
    return _weighted(variants, [v.weight for v in variants], y)


def audience_of(campaign: Campaign) -> Audience:
    return Audience.load(campaign.audience, match=CAMPAIGN_MATCH)


@dataclass
class Pick:
    campaign: Campaign
    variant: CampaignVariant
    banner: BannerImage
    is_default: bool = False
    # Why: the campaigns the rotation chose among (the top priority tier of those eligible; empty for the default)
    # and the variants it chose among, so pages explain a placement without deciding it a second time.
    tier: tuple[Campaign, ...] = ()
    variants: tuple[CampaignVariant, ...] = ()


class Rotation:
    """The rotation of one organisation at one moment; reuse it to place many employees cheaply."""

    def __init__(self, session: Session, *, org_id: int, at: datetime):
        self.session, self.org_id, self.at = session, org_id, at
        self.settings = campaign_settings(session, org_id)
        self.tz = org_zone(session, org_id)
        self.period_index, self.period_start, self.period_end = period_bounds(
            at, tz=self.tz, period=self.settings.rotation_period
        )
        campaigns = session.exec(
            select(Campaign).where(Campaign.org_id == org_id, col(Campaign.state).in_(list(LIVE)))
        ).all()
        self.live = [
            c
            for c in campaigns
            if c.effective_state(at) is CampaignState.active and c.id != self.settings.default_campaign_id
        ]
        default = (
            session.get(Campaign, self.settings.default_campaign_id) if self.settings.default_campaign_id else None
        )
        self.default = (
            default
            if default is not None and default.state in LIVE and (default.ends_at is None or at < default.ends_at)
            else None
        )
        ids = [row_id(c) for c in self.live] + ([row_id(self.default)] if self.default else [])
        self.variants = variants_of(session, ids)
        banner_ids = {v.banner_id for vs in self.variants.values() for v in vs}
        self.banners = (
            {b.id: b for b in session.exec(select(BannerImage).where(col(BannerImage.id).in_(banner_ids))).all()}
            if banner_ids
            else {}
        )
        self.in_audience = {c.id: audience_of(c).predicate() for c in self.live}
        self._groups: dict[int, set[str]] | None = None

    def preload_groups(self) -> None:
        self._groups = {}
        rows = self.session.exec(select(EmployeeGroup).where(EmployeeGroup.org_id == self.org_id)).all()
        for g in rows:
            self._groups.setdefault(g.employee_id, set()).add(g.group_key)

    def groups_of(self, employee: Employee) -> set[str]:
        if self._groups is not None:
            return self._groups.get(row_id(employee), set())
        return set(
            self.session.exec(select(EmployeeGroup.group_key).where(EmployeeGroup.employee_id == employee.id)).all()
        )

    def pick(self, employee: Employee) -> Pick | None:
        if not employee.active:
            return None
        groups = self.groups_of(employee) if self.live else set()
        employee_id = row_id(employee)
        eligible = [
            c for c in self.live if self.variants.get(row_id(c)) and self.in_audience[row_id(c)](employee, groups)
        ]
        campaign = choose(eligible, employee_id=employee_id, period_index=self.period_index)
        is_default = False
        if campaign is None:
            if self.default is None or not self.variants.get(row_id(self.default)):
                return None
            campaign, is_default = self.default, True
        variants = self.variants[row_id(campaign)]
        variant = choose_variant(campaign, variants, employee_id=employee_id, period_index=self.period_index)
        if variant is None:  # not reached: only campaigns with variants are picked
            return None
        tier = () if is_default else tuple(top_tier(eligible))
        return Pick(campaign, variant, self.banners[variant.banner_id], is_default, tier, tuple(variants))

    def preview_banner(self, pick: Pick, *, base_settings: Settings) -> BannerData:
        """The banner of `pick` as it renders, with the plain image and destination instead of tracked links:
        previews mint nothing and count nothing."""
        width, height = display_size(pick.banner, self.settings.max_display_width)
        return BannerData(
            image_url=asset_url(base_settings, pick.banner.asset), width=width, height=height, alt=pick.variant.alt,
            href=tracked_destination(pick.campaign, pick.variant, self.settings.utm_defaults),
        )  # fmt: skip

    def banner_for(self, employee: Employee, *, base_settings: Settings) -> BannerData | None:
        pick = self.pick(employee)
        if pick is None:
            return None
        employee_id = employee.id if attributed(self.session, employee) else None
        width, height = display_size(pick.banner, self.settings.max_display_width)
        image = mint(
            self.session,
            org_id=self.org_id,
            channel=Channel.banner_image,
            employee_id=employee_id,
            campaign_id=pick.campaign.id,
            destination=asset_url(base_settings, pick.banner.asset),
        )
        click = mint(
            self.session,
            org_id=self.org_id,
            channel=Channel.signature_banner,
            employee_id=employee_id,
            campaign_id=pick.campaign.id,
            destination=tracked_destination(pick.campaign, pick.variant, self.settings.utm_defaults),
        )
        for link in (image, click):
            _remember_variant(self.session, row_id(link), row_id(pick.campaign), row_id(pick.variant))
        base = base_settings.public_base_url
        return BannerData(
            image_url=url_for(image, base), width=width, height=height, alt=pick.variant.alt, href=url_for(click, base)
        )


def attributed(session: Session, employee: Employee) -> bool:
    """Whether this employee's links carry their id (organisation switch on and no personal opt-out)."""
    ts = session.get(TrackingSettings, employee.org_id)
    if ts is not None and not ts.attribution:
        return False
    return session.exec(select(TrackingOptOut.id).where(TrackingOptOut.employee_id == employee.id)).first() is None


def _remember_variant(session: Session, link_id: int, campaign_id: int, variant_id: int) -> None:
    if session.get(CampaignLink, link_id) is not None:
        return
    try:
        with session.begin_nested():
            session.add(CampaignLink(link_id=link_id, campaign_id=campaign_id, variant_id=variant_id))
    except IntegrityError:  # minted concurrently by another process
        pass


def banner_for(session: Session, *, employee: Employee, at: datetime | None = None,
               settings: Settings | None = None) -> BannerData | None:  # fmt: skip
    """The banner `employee`'s signature carries at `at` (default now), or None: pass it to render_employee.

    Links are minted idempotently, so the same employee, campaign and variant always render identical HTML.
    To place many employees, build one `Rotation` and call its `banner_for` instead.
    """
    rotation = Rotation(session, org_id=employee.org_id, at=at or utcnow())
    return rotation.banner_for(employee, base_settings=settings or get_settings())


def who_sees_what(
    session: Session, *, org_id: int, at: datetime, department: str | None = None, office: str | None = None,
    employee_id: int | None = None,
) -> tuple[Rotation, list[tuple]]:  # fmt: skip
    """[(employee, Pick | None)] for the active employees matching the filters, at `at`."""
    rotation = Rotation(session, org_id=org_id, at=at)
    rotation.preload_groups()
    wanted = Audience(
        match=Match.all,
        departments=[department] if department is not None else [],
        offices=[office] if office is not None else [],
        employees=[employee_id] if employee_id is not None else [],
    )
    employees = session.exec(wanted.query(org_id).order_by(Employee.id)).all()
    return rotation, [(e, rotation.pick(e)) for e in employees]


def rotation_fingerprint(session: Session, *, org_id: int, at: datetime) -> str:
    """A hash of who carries which banner at `at` (and of everything a banner renders from).

    The scheduler stores it after a deployment and compares it each tick: when it differs, re-render and
    let the deployment engine write only the mailboxes whose signature hash changed.
    """
    rotation, picks = who_sees_what(session, org_id=org_id, at=at)
    cs = rotation.settings
    h = hashlib.sha256(f"{cs.max_display_width}|{sorted(cs.utm_defaults.items())}".encode())
    for emp, pick in picks:
        if pick is None:
            h.update(f"{emp.id}:-;".encode())
            continue
        c, v, b = pick.campaign, pick.variant, pick.banner
        h.update(
            f"{emp.id}:{c.id}:{v.id}:{b.asset}:{v.alt}:{v.destination_url or c.destination_url}:"
            f"{sorted(c.utm.items())}:{c.name};".encode()
        )
    opted = session.exec(select(TrackingOptOut.employee_id).where(TrackingOptOut.org_id == org_id)).all()
    ts = session.get(TrackingSettings, org_id)
    h.update(f"opt:{sorted(opted)}:{ts.attribution if ts else True}".encode())
    return h.hexdigest()


def next_rotation_change(session: Session, *, org_id: int, after: datetime) -> datetime:
    """The next moment the rotation can change by itself: a period boundary, a campaign start or end."""
    rotation = Rotation(session, org_id=org_id, at=after)
    moments = [rotation.period_end]
    for c in session.exec(select(Campaign).where(Campaign.org_id == org_id, col(Campaign.state).in_(list(LIVE)))):
        moments += [t for t in (c.starts_at, c.ends_at) if t is not None and t > after]
    return min(moments)
