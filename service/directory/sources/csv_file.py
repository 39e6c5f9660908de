"""CSV as a directory source: every row is checked first; one bad row refuses the whole file.

Files come from spreadsheets as people export them: Excel in French saves `;`-separated, CRLF, Windows-1252
"CSV" or UTF-8 with a BOM ("CSV UTF-8"). The separator and encoding are detected (or given), and the column
names people use in English and French are understood. Every error names a line of the file.
"""

import codecs
import csv
import io
import re
import unicodedata
from dataclasses import dataclass

from service.directory.models import PROFILE_FIELDS
from service.directory.sync import DirectoryPerson, Listing
from service.errors import Invalid
from service.sentences import N_

MAX_BYTES = 10 * 1024 * 1024
MAX_ROWS = 200_000  # parsing is bounded: a bigger directory syncs from its provider
MAX_REPORTED_ERRORS = 100
EMAIL_RE = re.compile(r"^[^@\s<>\"']+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
LIST_SEPARATORS = re.compile(r"[;,]")  # aliases and groups: "a@x.fr; b@x.fr" (`,` too, inside quotes)
TEXT_COLUMNS = tuple(f for f in PROFILE_FIELDS if f != "email")  # the profile, in the table's order
COLUMNS = ("email", "source_id", *TEXT_COLUMNS, "aliases", "groups")
MAX_LEN = 320
DELIMITERS = {",": ",", ";": ";", "\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";"}
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}

# Other names people give each column, compared after _normalise (lower case, no accents, `_` for spaces).
ALIASES: dict[str, tuple[str, ...]] = {
    "email": ("e_mail", "mail", "courriel", "email_address", "adresse_e_mail", "adresse_email", "adresse_mail",
              "work_email", "email_professionnel", "e_mail_professionnel"),
    "source_id": ("id", "employee_id", "matricule", "identifiant"),
    "first_name": ("firstname", "first", "given_name", "prenom"),
    "last_name": ("lastname", "last", "surname", "family_name", "nom", "nom_de_famille"),
    "display_name": ("name", "full_name", "nom_complet", "nom_affiche", "nom_d_affichage"),
    "title": ("job_title", "position", "fonction", "poste", "titre", "intitule_du_poste"),
    "department": ("dept", "service", "departement", "direction", "equipe", "team"),
    "office": ("site", "bureau", "agence", "etablissement"),
    "location": ("city", "ville", "localisation", "lieu"),
    "phone": ("telephone", "tel", "work_phone", "business_phone", "office_phone", "telephone_fixe",
              "ligne_directe", "telephone_professionnel", "tel_fixe"),
    "mobile": ("mobile_phone", "cell", "cell_phone", "portable", "telephone_portable", "tel_portable",
               "telephone_mobile", "tel_mobile"),
    "manager_email": ("manager_e_mail", "email_manager", "e_mail_manager", "email_du_manager",
                      "email_du_responsable", "e_mail_du_responsable"),
    "photo_url": ("photo", "picture", "photo_url_https"),
    "locale": ("language", "langue"),
    "pronouns": ("pronoms",),
    "aliases": ("alias", "alias_email", "alias_e_mail"),
    "groups": ("group", "groupes", "groupe"),
}  # fmt: skip
_COLUMN_OF = {name: column for column in COLUMNS for name in (column, *ALIASES.get(column, ()))}


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str


class CsvDirectory:
    """`Directory` over an uploaded CSV file (header row required; an email column is the only required one).

    `delimiter` (`,` `;` tab) and `encoding` (any Python codec name) override the detection."""

    source = "csv"

    def __init__(self, data: bytes, *, delimiter: str | None = None, encoding: str | None = None):
        self.data = data
        self.delimiter = delimiter
        self.encoding = encoding

    def list_people(self) -> Listing:
        return Listing(people=parse_csv(self.data, delimiter=self.delimiter, encoding=self.encoding))


def check_options(delimiter: str | None, encoding: str | None) -> tuple[str | None, str | None]:
    """Validate the overrides before any file is read; return the delimiter character and codec name."""
    if delimiter:
        if delimiter.lower() not in DELIMITERS and delimiter not in DELIMITERS:
            raise Invalid(N_("Unknown delimiter %(delimiter)r; use ',', ';' or 'tab'.", delimiter=delimiter))
        delimiter = DELIMITERS.get(delimiter, DELIMITERS.get(delimiter.lower()))
    if encoding:
        try:
            encoding = codecs.lookup(encoding).name
        except LookupError:
            raise Invalid(
                N_("Unknown encoding %(encoding)r; use e.g. utf-8, cp1252 or latin-1.", encoding=encoding)
            ) from None
    return delimiter or None, encoding or None


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The file's text and the encoding it was read with: the one given, else UTF-8 (BOM or not), else
    Windows-1252, else Latin-1 (which decodes anything)."""
    if encoding:
        codec = "utf-8-sig" if encoding == "utf-8" else encoding
        try:
            return data.decode(codec), encoding
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise Invalid(
                N_(
                    "Line %(line)s is not valid %(encoding)s; leave --encoding out to detect it, or give the "
                    "encoding the file was saved in (e.g. cp1252 for Excel's plain 'CSV').",
                    line=line,
                    encoding=encoding,
                ),
                details={"line": line},
            ) from None
    for codec, name in (("utf-8-sig", "utf-8"), ("cp1252", "cp1252"), ("latin-1", "latin-1")):
        try:
            return data.decode(codec), name
        except UnicodeDecodeError:
            continue
    raise AssertionError("latin-1 decodes every byte")  # pragma: no cover


def detect_delimiter(text: str) -> str:
    """The separator used most in the header line, outside quotes: `,`, `;` or tab (`,` when none is)."""
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = dict.fromkeys((",", ";", "\t"), 0)
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _normalise(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "_", plain.lower()).strip("_")


def parse_csv(data: bytes, *, delimiter: str | None = None, encoding: str | None = None) -> list[DirectoryPerson]:
    if len(data) > MAX_BYTES:
        raise Invalid(
            N_("The CSV file is larger than %(mb)s MB; split it or use a provider sync.", mb=MAX_BYTES // 1024 // 1024)
        )
    delimiter, encoding = check_options(delimiter, encoding)
    text, _used = decode(data, encoding)
    delimiter = delimiter or detect_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header_line, raw_header = _header(reader)
    header = _columns(raw_header, delimiter, header_line)

    people: list[DirectoryPerson] = []
    errors: list[RowError] = []
    seen: dict[str, int] = {}
    count = 0
    while True:
        line = reader.line_num + 1  # where this record starts (a quoted value may span lines)
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(line, N_("cannot be read as CSV (%(error)s)", error=str(exc))))
            break
        count += 1
        if count > MAX_ROWS:
            rows = f"{MAX_ROWS:,}"
            raise Invalid(N_("The CSV file has more than %(rows)s rows; split it or use a provider sync.", rows=rows))
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            sep = _DELIMITER_NAMES[delimiter]
            errors.append(RowError(line, N_("more values than columns (an unquoted %(sep)s in a value?)", sep=sep)))
            continue
        values = {name: (row[i] if i < len(row) else "").strip() for i, name in enumerate(header)}
        problem = _check_row(values, seen, line)
        if problem:
            errors.append(RowError(line, problem))
            continue
        people.append(_person(values))
    if errors:
        raise Invalid(
            N_("%(n)s row(s) have problems; nothing was imported. Fix them and upload again.", n=len(errors)),
            details={"errors": [e.__dict__ for e in errors[:MAX_REPORTED_ERRORS]]},
        )
    return people


def _header(reader) -> tuple[int, list[str]]:
    for row in reader:
        if any(cell.strip() for cell in row):
            return reader.line_num, row
    raise Invalid(N_("The CSV file is empty: it needs a header row with at least an email column."))


def _columns(raw: list[str], delimiter: str, line: int) -> list[str]:
    found = [cell.strip() for cell in raw]
    expected = {"expected_columns": list(COLUMNS), "found_columns": found}
    columns = [_COLUMN_OF.get(_normalise(cell), "") for cell in found]
    if "email" not in columns:
        shown = ", ".join(repr(c) for c in found[:8]) + (" …" if len(found) > 8 else "")
        raise Invalid(
            N_(
                "Line %(line)s (the header) has no email column: read as %(sep)s-separated, it has %(shown)s. "
                "Name one column 'email' (or 'E-mail', 'Courriel'), or give the separator.",
                line=line,
                sep=_DELIMITER_NAMES[delimiter],
                shown=shown,
            ),
            details=expected,
        )
    unknown = [cell for cell, column in zip(found, columns, strict=True) if not column and cell]
    if unknown:
        raise Invalid(
            N_(
                "Line %(line)s (the header) has unknown column(s): %(unknown)s. Remove or rename them "
                "(accepted names are listed in docs/directory.md).",
                line=line,
                unknown=", ".join(unknown),
            ),
            details=expected,
        )
    twice = sorted({c for c in columns if c and columns.count(c) > 1})
    if twice:
        names = "; ".join(
            f"{', '.join(cell for cell, col in zip(found, columns, strict=True) if col == c)} are all {c!r}"
            for c in twice
        )
        raise Invalid(
            N_("Line %(line)s (the header) names a column twice: %(names)s. Keep one of each.", line=line, names=names),
            details=expected,
        )
    return [column or f"_blank{i}" for i, column in enumerate(columns)]


def _check_row(values: dict[str, str], seen: dict[str, int], line: int) -> str | None:
    email = values.get("email", "")
    if not EMAIL_RE.match(email):
        return N_("'email' is not an email address: %(email)r", email=email) if email else N_("'email' is empty")
    key = email.lower()
    if key in seen:
        return N_("%(email)s already appears on line %(line)s", email=email, line=seen[key])
    seen[key] = line
    for name, value in values.items():
        if len(value) > MAX_LEN and name not in ("aliases", "groups"):
            return N_("'%(name)s' is longer than %(max)s characters", name=name, max=MAX_LEN)
    photo = values.get("photo_url", "")
    if photo and not photo.startswith("https://"):
        return N_("'photo_url' must be an https:// URL (mail clients block other images)")
    for alias in _split(values.get("aliases", "")):
        if not EMAIL_RE.match(alias):
            return N_("alias %(alias)r is not an email address", alias=alias)
    manager = values.get("manager_email", "")
    if manager and not EMAIL_RE.match(manager):
        return N_("'manager_email' is not an email address: %(manager)r", manager=manager)
    return None


def _split(value: str) -> tuple[str, ...]:
    return tuple(sorted({part.strip() for part in LIST_SEPARATORS.split(value) if part.strip()}))


def _person(values: dict[str, str]) -> DirectoryPerson:
    email = values["email"]
    return DirectoryPerson(
        source_id=values.get("source_id") or email.lower(),
        email=email,
        aliases=_split(values.get("aliases", "")),
        groups=_split(values.get("groups", "")),
        **{name: values.get(name) or None for name in TEXT_COLUMNS},
    )
