"""CSV as a directory source: every row is checked first; one bad row refuses the whole file."""

import csv
import io
import re
from dataclasses import dataclass

from service.directory.sync import DirectoryPerson, Listing
from service.errors import Invalid

MAX_BYTES = 10 * 1024 * 1024
EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
LIST_SEPARATOR = ";"
TEXT_COLUMNS = (
    "first_name", "last_name", "display_name", "title", "department", "office", "location", "phone",
    "mobile", "manager_email", "photo_url", "locale", "pronouns",
)  # fmt: skip
COLUMNS = ("email", "source_id", *TEXT_COLUMNS, "aliases", "groups")
MAX_LEN = 320


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


class CsvDirectory:
    """`Directory` over an uploaded CSV file (header row required; `email` is the only required column)."""

    source = "csv"

    def __init__(self, data: bytes):
        self.data = data

    def list_people(self) -> Listing:
        return Listing(people=parse_csv(self.data))


def parse_csv(data: bytes) -> list[DirectoryPerson]:
    if len(data) > MAX_BYTES:
        raise Invalid(f"The CSV file is larger than {MAX_BYTES // 1024 // 1024} MB; split it or use a provider sync.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Invalid(f"The CSV file is not UTF-8 (byte {exc.start}); export it as 'CSV UTF-8'.") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "email" not in header:
        raise Invalid(
            "The CSV file needs a header row with at least an 'email' column.",
            details={"expected_columns": list(COLUMNS)},
        )
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise Invalid(f"Unknown column(s): {', '.join(unknown)}.", details={"expected_columns": list(COLUMNS)})
    reader.fieldnames = header

    people: list[DirectoryPerson] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            errors.append(RowError(line, "more values than columns (an unquoted comma?)"))
            continue
        values = {k: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        problem = _check_row(values, seen, line)
        if problem:
            errors.append(RowError(line, problem))
            continue
        people.append(_person(values))
    if errors:
        raise Invalid(
            f"{len(errors)} row(s) have problems; nothing was imported. Fix them and upload again.",
            details={"errors": [e.__dict__ for e in errors]},
        )
    return people


def _check_row(values: dict[str, str], seen: dict[str, int], line: int) -> str | None:
    email = values.get("email", "")
    if not EMAIL_RE.match(email):
        return f"'email' is not an email address: {email!r}" if email else "'email' is empty"
    key = email.lower()
    if key in seen:
        return f"{email} already appears on line {seen[key]}"
    seen[key] = line
    for name, value in values.items():
        if len(value) > MAX_LEN and name not in ("aliases", "groups"):
            return f"'{name}' is longer than {MAX_LEN} characters"
    photo = values.get("photo_url", "")
    if photo and not photo.startswith("https://"):
        return "'photo_url' must be an https:// URL (mail clients block other images)"
    for alias in _split(values.get("aliases", "")):
        if not EMAIL_RE.match(alias):
            return f"alias {alias!r} is not an email address"
    manager = values.get("manager_email", "")
    if manager and not EMAIL_RE.match(manager):
        return f"'manager_email' is not an email address: {manager!r}"
    return None


def _split(value: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()}))


def _person(values: dict[str, str]) -> DirectoryPerson:
    email = values["email"]
    return DirectoryPerson(
        source_id=values.get("source_id") or email.lower(),
        email=email,
        aliases=_split(values.get("aliases", "")),
        groups=_split(values.get("groups", "")),
        **{name: values.get(name) or None for name in TEXT_COLUMNS},
    )
