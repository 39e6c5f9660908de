"""Building blocks for the recognition tests: employees with portal users, share posts and crafted clicks."""

from datetime import datetime, timedelta

from sqlmodel import Session

from advocacy.recognition.models import Contest, Metric
from newsletter.models import Article
from portal.visibility import set_choices
from service.clicks.models import Click, Verdict
from service.db import utcnow
from service.directory.models import Employee
from service.links import Channel, mint
from service.models import Role
from tests.page_support import make_user

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"


def employee(db, org_id: int, first: str, department: str | None = "Sales", *, user: bool = False,
             rank_visible: bool = False, public: bool = False) -> int:  # fmt: skip
    with Session(db) as s:
        e = Employee(org_id=org_id, email=f"{first.lower()}@acme.example", first_name=first, last_name="Zed",
                     display_name=f"{first} Zed", department=department, source_id=first, title="Engineer")  # fmt: skip
        s.add(e)
        s.flush()
        assert e.id is not None
        if rank_visible or public:
            set_choices(s, org_id=org_id, employee_id=e.id, rank_visible=rank_visible, public_ambassador=public)
        s.commit()
        emp_id = e.id
    if user:
        make_user(db, org_id, Role.employee, email=f"{first.lower()}@acme.example")
    return emp_id


def article(db, org_id: int, title: str = "Lyon opens") -> int:
    with Session(db) as s:
        a = Article(org_id=org_id, url=f"https://acme.example/{title.replace(' ', '-')}", title=title)
        s.add(a)
        s.commit()
        assert a.id is not None
        return a.id


def share_spec(db, org_id: int, article_id: int, network: str = "linkedin") -> int:
    with Session(db) as s:
        spec = mint(s, org_id=org_id, channel=Channel.share, destination=f"https://acme.example/a/{article_id}",
                    article_id=article_id, network=network)  # fmt: skip
        s.commit()
        assert spec.id is not None
        return spec.id


def click(db, org_id: int, *, employee_id: int | None, channel: Channel, verdict: Verdict,
          at: datetime | None = None, link_id: int = 1, article_id: int | None = None, network: str | None = None,
          visitor: str = "v") -> None:  # fmt: skip
    with Session(db) as s:
        s.add(Click(org_id=org_id, link_id=link_id, employee_id=employee_id, article_id=article_id, channel=channel,
                    network=network, verdict=verdict, occurred_at=at or utcnow(), visitor=visitor))  # fmt: skip
        s.commit()


def post(db, org_id: int, employee_id: int, spec_id: int, article_id: int, *, at: datetime, clicks: int = 0,
         network: str = "linkedin") -> None:  # fmt: skip
    """A confirmed post (the preview crawler's first fetch at `at`) and `clicks` human clicks by distinct people."""
    facts = dict(employee_id=employee_id, channel=Channel.share, link_id=spec_id, article_id=article_id,
                 network=network)  # fmt: skip
    click(db, org_id, verdict=Verdict.crawler, at=at, visitor="crawler", **facts)  # type: ignore[arg-type]
    for n in range(clicks):
        click(
            db, org_id, verdict=Verdict.human, at=at + timedelta(minutes=n + 1), visitor=f"p{employee_id}-{n}", **facts
        )  # type: ignore[arg-type]


def contest(db, org_id: int, metric: Metric, start: datetime, end: datetime, audience: dict | None = None,
            title: str = "December challenge", winners: int = 3) -> int:  # fmt: skip
    with Session(db) as s:
        c = Contest(org_id=org_id, title=title, metric=metric, starts_at=start, ends_at=end,
                    audience=audience or {"everyone": True}, winners=winners)  # fmt: skip
        s.add(c)
        s.commit()
        assert c.id is not None
        return c.id
