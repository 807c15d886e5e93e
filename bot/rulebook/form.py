"""The official "ticket Réclamation" form: read its fields from an email, check conformity.

A website's form plugin sends either plain text (``Label : value`` per line, values may
span several lines) or an HTML table (``<tr><th>Label</th><td>value</td></tr>``). Labels
are matched tolerantly against ``rules/forms.toml`` (case, accents, spacing, colon).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from html.parser import HTMLParser

from bot.core.text import fold, visible
from bot.rulebook import FormField, FormVersion, Rulebook

_BULLETS = "*-•"
_LONGEST_LABEL = 80


def _label_line(line: str) -> tuple[str, str] | None:
    """``(label, value)`` of a ``Label : value`` line (a bullet before the label, a ``*``
    after it allowed), else ``None``.

    Read by hand, not by a regular expression: a line padded with runs of spaces (a table
    laid out as text) made the expression backtrack for 40 µs a line.
    """
    label, colon, value = line.partition(":")
    if not colon:
        return None
    label = label.strip()
    if label[:1] and label[0] in _BULLETS:
        label = label[1:].lstrip()
    label = label.rstrip("*").rstrip()
    if not label or len(label) > _LONGEST_LABEL or "\n" in label:
        return None
    return label, value[1:] if value[:1].isspace() else value
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y")


class _TableReader(HTMLParser):
    """Collect the text of each ``<tr>`` cell; rows of two cells are label/value pairs."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[list[str]] = []
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        elif tag == "br" and self._cell is not None:
            self._cell.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _clean(value: str) -> str:
    lines = [line.rstrip() for line in value.strip().splitlines()]
    return "\n".join(lines).strip()


def fields_from_html(html: str, names: dict[str, FormField]) -> dict[str, str]:
    """Label/value pairs of the HTML table rows whose label is a known field."""
    reader = _TableReader()
    try:
        reader.feed(html)
        reader.close()
    except (AssertionError, ValueError):  # pathological markup: keep what was read
        pass
    found: dict[str, str] = {}
    for row in reader.rows:
        if len(row) >= 2:
            f = names.get(fold(row[0].rstrip(" :*")))
            if f is not None and f.key not in found:
                found[f.key] = _clean(" ".join(row[1:]) if len(row) > 2 else row[1])
    return found


#: The key under which :func:`fields_from_text` lists the fields whose label it found
#: more than once (comma-separated): no form field's key begins with "_".
REPEATED = "_repeated"
#: What ends a line wherever text is split (``str.splitlines``): a value holding one of
#: these holds several lines.
LINE_BREAKS = re.compile("[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")


def fields_from_text(text: str, names: dict[str, FormField]) -> dict[str, str]:
    """``Label : value`` lines; a line that starts no known label continues the value of
    a text field. The value of a field of another type (a choice, a consent, an address,
    a date…) is its line: what follows it (a sign-off under a reply's last field) is no
    part of it.

    A label counts once. Found again (a value that holds a line of the form's layout, or
    a field written twice), it is listed under :data:`REPEATED`, and :func:`validate`
    uses neither value: a value cannot carry another field.
    """
    found: dict[str, list[str]] = {}
    repeated: list[str] = []
    current: str | None = None
    for line in text.splitlines():
        match = _label_line(line)
        f = names.get(fold(match[0])) if match else None
        if match and f is not None:
            if f.key in found:
                if f.key not in repeated:
                    repeated.append(f.key)
                current = None
                continue
            current = f.key if f.type == "text" else None
            found[f.key] = [match[1]]
        elif current is not None:
            found[current].append(line)
    fields = {key: _clean("\n".join(lines)) for key, lines in found.items()}
    if repeated:
        fields[REPEATED] = ",".join(repeated)
    return fields


def extract_fields(text: str, html: str, rulebook: Rulebook) -> dict[str, str]:
    """Every known field found in the message, HTML table first, then the text."""
    names = rulebook.field_names
    found = fields_from_html(html, names) if html else {}
    for key, value in fields_from_text(text, names).items():
        found.setdefault(key, value)
    return found


def _line_problem(f: FormField, value: str) -> str | None:
    if not f.multiline and LINE_BREAKS.search(value):
        return "doit tenir sur une seule ligne"
    if len(value) > f.limit:
        return f"trop long : {_count(f.limit)} caractères au plus, pour {_count(len(value))} ici"
    return None


def _count(number: int) -> str:
    """A count as French writes it: thin spaces between thousands (60 000)."""
    return f"{number:,}".replace(",", "\u202f")


@dataclass(frozen=True)
class Problem:
    """One reason a submission is not conforming, in plain French for the complainant."""

    key: str  # the field's key in rules/forms.toml
    field: str  # the field's label as the form prints it
    message: str


@dataclass(frozen=True)
class Validation:
    """The result of checking a submission against the form version in force."""

    version: FormVersion | None
    values: dict[str, str]
    problems: tuple[Problem, ...]

    @property
    def conforming(self) -> bool:
        return not self.problems


def valid_email(value: str) -> str | None:
    """``value`` normalised (NFC, IDNA, lower case) if it is an email address, else None."""
    from email_validator import EmailNotValidError, validate_email

    try:
        return validate_email(value, check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


def _normalise(f: FormField, value: str) -> tuple[str, str | None]:
    """The value as stored, and a problem message if it is not acceptable."""
    if f.type == "email":
        email = valid_email(value)
        return (email, None) if email else (value, f"l'adresse « {value} » n'est pas valide")
    if f.type == "choice":
        folded = fold(value)
        for choice in f.choices:
            if fold(choice) == folded:
                return choice, None
        allowed = ", ".join(f.choices)
        return value, f"« {value} » n'est pas une valeur possible ({allowed})"
    if f.type == "consent":
        if fold(value) in ("oui", "yes", "j accepte", "accepte", "1", "true", "on"):
            return "Oui", None
        return value, "votre consentement est nécessaire pour traiter la réclamation (« Oui »)"
    if f.type == "date":
        for fmt in _DATE_FORMATS:
            try:
                return dt.datetime.strptime(value.strip(), fmt).date().isoformat(), None
            except ValueError:
                continue
        return value, None  # a free-text date ("mi-octobre") is still useful information
    if f.type == "reference":
        return value.strip().upper(), None
    return value, None


def validate(values: dict[str, str], rulebook: Rulebook, day: dt.date) -> Validation:
    """Check ``values`` against the form version it names, as in force on ``day``."""
    version_id = values.get("form_version", "").strip()
    version = rulebook.form_version(version_id) if version_id else None
    current = rulebook.current_form(day)
    problems: list[Problem] = []
    if not version_id:
        label = current.field("form_version").label
        problems.append(Problem("form_version", label, "information manquante"))
        version = current
    elif version is None:
        problems.append(
            Problem(
                "form_version",
                current.field("form_version").label,
                f"la version « {version_id} » est inconnue ; merci d'utiliser le formulaire "
                f"en vigueur (version {current.id})",
            )
        )
        version = current
    elif not version.in_force(day):
        problems.append(
            Problem(
                "form_version",
                version.field("form_version").label,
                f"la version « {version.id} » n'est plus en vigueur ; merci d'utiliser le "
                f"formulaire en vigueur (version {current.id})",
            )
        )
    cleaned: dict[str, str] = {"form_version": version.id} if not problems else {}
    repeated = set(values.get(REPEATED, "").split(","))
    for f in version.fields:
        if f.key == "form_version":
            continue
        if f.key in repeated:
            # Which of the two is hers is not known: neither is kept, nor acted on.
            problems.append(Problem(f.key, f.label, "figure deux fois dans le formulaire "
                                    "reçu : indiquez-la une seule fois"))
            continue
        value = values.get(f.key, "").strip()
        if not f.multiline:
            value = visible(value).strip()  # a name, an object: it says what it shows
        if not value:
            if f.required:
                problems.append(Problem(f.key, f.label, "information manquante"))
            continue
        line_problem = _line_problem(f, value)
        if line_problem:
            problems.append(Problem(f.key, f.label, line_problem))
            continue
        stored, problem = _normalise(f, value)
        cleaned[f.key] = stored
        if problem:
            problems.append(Problem(f.key, f.label, problem))
    return Validation(version=version, values=cleaned, problems=tuple(problems))
