"""The procedure's rules as data: ``rules/*.toml`` loaded into one frozen object.

Code decides *how* to apply a rule; these files say *what* the procedure is: the subject
tag, the deadlines, the form versions and their fields, the markers of automatic mail.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from bot.config import package_data_dir
from bot.core.text import fold
from bot.core.workdays import FRANCE, Calendar
from bot.errors import RulesError
from bot.rulebook.replies import ReplyRules, load_reply_rules

FIELD_TYPES = ("text", "email", "phone", "date", "choice", "consent", "reference")
#: The default limits of a field's length (``max_length``), in characters.
LONGEST_LINE = 300
LONGEST_TEXT = 65_536
#: The fields of several lines of the shipped form, for a copy that does not say so.
_FREE_TEXTS = ("description", "expected_solution")


@dataclass(frozen=True)
class FormField:
    """One labelled field of a form version."""

    key: str
    label: str
    aliases: tuple[str, ...] = ()
    required: bool = False
    type: str = "text"
    choices: tuple[str, ...] = ()
    #: A sentence under the field on the web form (what to write, in what format).
    help: str = ""
    #: Several lines of text (a textarea on the web form).
    multiline: bool = False
    #: The most characters it may hold (0: the default of its kind, :attr:`limit`).
    max_length: int = 0

    @property
    def limit(self) -> int:
        """The most characters the field may hold, on the web form and in an emailed
        form alike: ``max_length``, else 300 on one line and 65,536 (64 Ki) on several."""
        return self.max_length or (LONGEST_TEXT if self.multiline else LONGEST_LINE)

    def names(self) -> tuple[str, ...]:
        """Every folded spelling that designates this field."""
        return tuple(dict.fromkeys(fold(n) for n in (self.label, *self.aliases)))


@dataclass(frozen=True)
class FormVersion:
    """A version of the official "ticket Réclamation" form and its validity."""

    id: str
    valid_from: dt.date
    valid_until: dt.date | None
    fields: tuple[FormField, ...]

    def in_force(self, day: dt.date) -> bool:
        """Whether a submission received on ``day`` may use this version."""
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)

    def field(self, key: str) -> FormField:
        """The field with this key (a ``RulesError`` if the version lacks it)."""
        for f in self.fields:
            if f.key == key:
                return f
        raise RulesError(f"rules/forms.toml: the version {self.id} has no field {key}")


@dataclass(frozen=True)
class SubjectRule:
    """A named family of subjects only machines write, with its reason."""

    name: str
    reason: str
    patterns: tuple[re.Pattern[str], ...]

    def match(self, subject: str) -> str | None:
        """The pattern that matches ``subject`` (prepared by the classifier), or ``None``."""
        for pattern in self.patterns:
            if pattern.search(subject):
                return pattern.pattern
        return None


@dataclass(frozen=True)
class RobotRules:
    """Markers of automatic messages (RFC 3834 and common practice)."""

    auto_submitted_human_values: tuple[str, ...]
    presence_headers: tuple[str, ...]
    precedence_values: tuple[str, ...]
    robot_senders: tuple[str, ...]
    report_content_types: tuple[str, ...]
    forward_prefixes: tuple[str, ...] = ()
    robot_return_paths: tuple[str, ...] = ()
    report_part_types: tuple[str, ...] = ()
    enclosed_message_types: tuple[str, ...] = ()
    subject_rules: tuple[SubjectRule, ...] = ()
    report_body_openings: tuple[re.Pattern[str], ...] = ()
    #: Like :attr:`report_body_openings`, but on the body's first non-blank line only:
    #: words a person may paste a little further down («Error: Invalid user address»).
    report_first_lines: tuple[re.Pattern[str], ...] = ()


@dataclass(frozen=True)
class Category:
    """An object category of the pseudonymised register."""

    name: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class TimeRules:
    """Deadlines and delays of the procedure (``rules/procedure.toml``)."""

    closure_working_days: int = 10
    remind_before_working_days: int = 2
    max_answer_months: int = 2
    incomplete_remind_after_days: int = 7
    incomplete_abandon_after_days: int = 7
    contact_abandon_after_days: int = 30
    satisfaction_after_days: int = 7
    personal_data_years: int = 1
    pseudonymised_years: int = 3
    monthly_report: bool = True


@dataclass(frozen=True)
class CommandHelp:
    """One director command, described once (``rules/commands.toml``): its name and
    aliases (what the parser knows), whether it only reads, its syntax and help (what
    every help shows), the replies a tap on it opens."""

    syntax: str
    help: str
    prefills: tuple[str, ...]
    name: str = ""
    aliases: tuple[str, ...] = ()
    read_only: bool = False
    #: Read at intake as the first line of a staff member's new message (a forward, or a
    #: letter she passes on), never applied to a complaint: no reply to a notification
    #: carries it, so it opens no reply (no prefills).
    forward: bool = False

    def __post_init__(self) -> None:
        if not self.name:  # the command word of its syntax, without its "#"
            object.__setattr__(self, "name", self.syntax.split()[0].lstrip("#"))


@dataclass(frozen=True)
class CommandsHelp:
    """The director's commands: a sentence before their help, the commands, one after."""

    intro: str
    outro: str
    commands: tuple[CommandHelp, ...]

    @cached_property
    def words(self) -> dict[str, str]:
        """Every word she may type (folded: no case, no accents), to its command's name."""
        return {fold(word).replace(" ", ""): command.name for command in self.commands
                for word in (command.name, *command.aliases)}

    @cached_property
    def read_only(self) -> frozenset[str]:
        """The commands that read the register without changing it: no token needed."""
        return frozenset(c.name for c in self.commands if c.read_only)

    @cached_property
    def forward(self) -> frozenset[str]:
        """The words of the command that makes a staff member's message a forward."""
        return frozenset(word for word, name in self.words.items()
                         if any(c.forward and c.name == name for c in self.commands))


@dataclass(frozen=True)
class Rulebook:
    """Everything in ``rules/``."""

    subject_tags: tuple[str, ...]
    acknowledge_working_days: int
    answer_working_days: int
    complaint_prefix: str
    contact_prefix: str
    ticket_prefix: str
    mode_email: str
    mode_form: str
    form_versions: tuple[FormVersion, ...]
    robots: RobotRules
    undeclared_charsets: tuple[str, ...] = ("utf_8", "cp1252")
    auto_replies_per_address_per_day: int = 10
    time: TimeRules = TimeRules()
    categories: tuple[Category, ...] = ()
    calendar: Calendar = FRANCE
    response_prefix: str = "REP"
    commands: CommandsHelp = CommandsHelp("", "", ())
    #: What mail clients add to a reply (``rules/replies.toml``): the shipped rules
    #: unless the rules folder has its own.
    replies: ReplyRules = field(default_factory=lambda: _reply_rules(None))
    #: Words that make a reply to the satisfaction question a "pas satisfait".
    satisfaction_negatives: tuple[str, ...] = ("pas satisfait", "non satisfait", "insatisfait",
                                               "mecontent", "pas du tout")

    def object_category(self, text: str) -> str:
        """The category of a complaint's object (``rules/categories.toml``)."""
        words = f" {fold(text)} "
        for category in self.categories:
            if any(fold(w) in words for w in category.words):
                return category.name
        return "Autre"

    def form_version(self, version_id: str) -> FormVersion | None:
        """The form version with this id, in force or not."""
        wanted = fold(version_id)
        return next((v for v in self.form_versions if fold(v.id) == wanted), None)

    def current_form(self, day: dt.date) -> FormVersion:
        """The version in force on ``day`` (the newest one if several overlap)."""
        in_force = [v for v in self.form_versions if v.in_force(day)]
        if not in_force:
            raise RulesError(f"rules/forms.toml: no form version is in force on {day}")
        return max(in_force, key=lambda v: v.valid_from)

    @cached_property
    def field_names(self) -> dict[str, FormField]:
        """Folded label or alias -> field, across all versions (newest wins); computed once."""
        return self.all_field_names()

    def all_field_names(self) -> dict[str, FormField]:
        """Folded label or alias -> field, across all versions (newest wins)."""
        names: dict[str, FormField] = {}
        for version in sorted(self.form_versions, key=lambda v: v.valid_from):
            for f in version.fields:
                for name in f.names():
                    names[name] = f
        return names


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{path}: missing") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: {exc}") from None


def _get(data: dict[str, Any], dotted: str, where: Path, kind: type | tuple[type, ...]) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise RulesError(f"{where}: missing {dotted}")
        node = node[part]
    if not isinstance(node, kind) or (isinstance(node, bool) and kind is int):
        raise RulesError(f"{where}: {dotted} has the wrong type ({type(node).__name__})")
    return node


def _strings(data: dict[str, Any], dotted: str, where: Path) -> tuple[str, ...]:
    values = _get(data, dotted, where, list)
    if not all(isinstance(v, str) for v in values):
        raise RulesError(f"{where}: {dotted} must be a list of strings")
    return tuple(values)


def _calendar(data: dict[str, Any], where: Path) -> Calendar:
    fixed = []
    for text in _strings(data, "calendar.fixed_holidays", where):
        try:
            day = dt.datetime.strptime(f"2000-{text}", "%Y-%m-%d").date()  # 2000: 29 Feb exists
        except ValueError:
            raise RulesError(f"{where}: calendar.fixed_holidays: {text!r} is not MM-DD") from None
        fixed.append((day.month, day.day))
    offsets = _get(data, "calendar.easter_holidays", where, list)
    if not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets):
        raise RulesError(f"{where}: calendar.easter_holidays must be a list of whole numbers")
    return Calendar(fixed=tuple(fixed), easter_offsets=tuple(offsets))


def _form_versions(path: Path) -> tuple[FormVersion, ...]:
    data = _read(path)
    versions = []
    for i, raw in enumerate(_get(data, "versions", path, list)):
        where = f"{path}: versions[{i}]"
        try:
            fields = tuple(
                FormField(
                    key=f["key"],
                    label=f["label"],
                    aliases=tuple(f.get("aliases", ())),
                    required=bool(f.get("required", False)),
                    type=f.get("type", "text"),
                    choices=tuple(f.get("choices", ())),
                    help=str(f.get("help", "")),
                    # A form copied before "multiline" existed keeps its free texts free.
                    multiline=bool(f.get("multiline", f.get("key") in _FREE_TEXTS)),
                    max_length=int(f.get("max_length", 0)),
                )
                for f in raw["fields"]
            )
            valid_from = raw["valid_from"]
            valid_until = raw.get("valid_until")
            version = FormVersion(str(raw["id"]), valid_from, valid_until, fields)
        except (KeyError, TypeError) as exc:
            raise RulesError(f"{where}: missing or malformed {exc}") from None
        if not isinstance(valid_from, dt.date) or not (
            valid_until is None or isinstance(valid_until, dt.date)
        ):
            raise RulesError(f"{where}: valid_from/valid_until must be dates (YYYY-MM-DD)")
        for f in fields:
            if f.type not in FIELD_TYPES:
                raise RulesError(f"{where}: field {f.key} has unknown type {f.type!r}")
            if f.type == "choice" and not f.choices:
                raise RulesError(f"{where}: choice field {f.key} lists no choices")
        keys = [f.key for f in fields]
        for needed in ("form_version", "email"):
            if needed not in keys:
                raise RulesError(f"{where}: a form version needs a '{needed}' field")
        versions.append(version)
    if not versions:
        raise RulesError(f"{path}: no form version")
    return tuple(versions)


def _categories(path: Path) -> tuple[Category, ...]:
    data = _read(path)
    try:
        return tuple(Category(str(c["name"]), tuple(str(w) for w in c["words"]))
                     for c in data.get("categories", []))
    except (KeyError, TypeError) as exc:
        raise RulesError(f"{path}: malformed category ({exc})") from None


def load_rulebook(rules_dir: Path) -> Rulebook:
    """Read ``procedure.toml``, ``forms.toml`` and ``robots.toml`` from ``rules_dir``."""
    procedure_path = rules_dir / "procedure.toml"
    robots_path = rules_dir / "robots.toml"
    procedure = _read(procedure_path)
    robots = _read(robots_path)
    p = procedure_path
    return Rulebook(
        subject_tags=tuple(fold(t) for t in _strings(procedure, "subject.tags", p)),
        acknowledge_working_days=_get(procedure, "deadlines.acknowledge_working_days", p, int),
        answer_working_days=_get(procedure, "deadlines.answer_working_days", p, int),
        complaint_prefix=_get(procedure, "references.complaint_prefix", p, str),
        contact_prefix=_get(procedure, "references.contact_prefix", p, str),
        ticket_prefix=_get(procedure, "references.ticket_prefix", p, str),
        response_prefix=(_get(procedure, "references.response_prefix", p, str)
                         if "response_prefix" in procedure.get("references", {}) else "REP"),
        mode_email=_get(procedure, "initial_contact.mode_email", p, str),
        mode_form=_get(procedure, "initial_contact.mode_form", p, str),
        form_versions=_form_versions(rules_dir / "forms.toml"),
        commands=_commands_help(rules_dir),
        replies=_reply_rules(rules_dir),
        undeclared_charsets=_strings(procedure, "charsets.undeclared", p),
        auto_replies_per_address_per_day=_get(
            robots, "limits.auto_replies_per_address_per_day", robots_path, int
        ),
        time=TimeRules(
            closure_working_days=_get(procedure, "deadlines.closure_working_days", p, int),
            remind_before_working_days=_get(
                procedure, "deadlines.remind_before_working_days", p, int),
            max_answer_months=_get(procedure, "deadlines.max_answer_months", p, int),
            incomplete_remind_after_days=_get(procedure, "incomplete.remind_after_days", p, int),
            incomplete_abandon_after_days=_get(
                procedure, "incomplete.abandon_after_days", p, int),
            contact_abandon_after_days=_get(
                procedure, "incomplete.contact_abandon_after_days", p, int),
            satisfaction_after_days=_get(procedure, "satisfaction.ask_after_days", p, int),
            personal_data_years=_get(procedure, "retention.personal_data_years", p, int),
            pseudonymised_years=_get(procedure, "retention.pseudonymised_years", p, int),
            monthly_report=_get(procedure, "report.monthly", p, bool),
        ),
        categories=_categories(rules_dir / "categories.toml"),
        # A rules folder copied before the list existed keeps the shipped words.
        **({"satisfaction_negatives": tuple(fold(w) for w in _strings(
            procedure, "satisfaction.negatives", p))}
           if "negatives" in procedure.get("satisfaction", {}) else {}),
        calendar=_calendar(procedure, p),
        robots=RobotRules(
            auto_submitted_human_values=tuple(
                v.lower() for v in _strings(robots, "auto_submitted_human_values", robots_path)
            ),
            presence_headers=_strings(robots, "presence_headers", robots_path),
            precedence_values=tuple(
                v.lower() for v in _strings(robots, "precedence_values", robots_path)
            ),
            robot_senders=tuple(v.lower() for v in _strings(robots, "robot_senders", robots_path)),
            report_content_types=tuple(
                v.lower() for v in _strings(robots, "report_content_types", robots_path)
            ),
            forward_prefixes=tuple(
                v.lower() for v in _optional(robots, "forward_prefixes", robots_path)),
            robot_return_paths=tuple(
                v.lower() for v in _optional(robots, "robot_return_paths", robots_path)),
            report_part_types=tuple(
                v.lower() for v in _optional(robots, "report_part_types", robots_path)),
            enclosed_message_types=tuple(
                v.lower() for v in _optional(robots, "enclosed_message_types", robots_path)),
            subject_rules=(_out_of_office_rule(robots, robots_path),
                           *_subject_rules(robots, robots_path)),
            report_body_openings=tuple(
                _regex(v, f"{robots_path}: report_body_openings")
                for v in _optional(robots, "report_body_openings", robots_path)),
            report_first_lines=tuple(
                _regex(v, f"{robots_path}: report_first_lines")
                for v in _optional(robots, "report_first_lines", robots_path)),
        ),
    )


def _reply_rules(rules_dir: Path | None) -> ReplyRules:
    """``replies.toml`` of ``rules_dir``, or the one shipped with the package (a rules
    folder copied before it existed, or none): what clients write is no organisation's."""
    path = (rules_dir or package_data_dir("rules")) / "replies.toml"
    if not path.exists():
        path = package_data_dir("rules") / "replies.toml"
    return load_reply_rules(path)


def _commands_help(rules_dir: Path) -> CommandsHelp:
    """``commands.toml`` of ``rules_dir``; a rules folder copied before it existed uses the
    one shipped with the package (the commands are the code's, not the organisation's)."""
    shipped = package_data_dir("rules") / "commands.toml"
    path = rules_dir / "commands.toml"
    if not path.exists():
        path = shipped
    # A copy from before names and aliases were written there takes the shipped ones.
    known = {c.name: c for c in _read_commands(shipped, {}).commands} if path != shipped else {}
    return _read_commands(path, known)


def _read_commands(path: Path, known: dict[str, CommandHelp]) -> CommandsHelp:
    data = _read(path)
    commands = []
    tables = _tables(data, "commands", path, ("syntax", "help", "prefills"))
    for (where, (syntax, text, prefills)), raw in zip(tables, data["commands"], strict=False):
        syntax, text = str(syntax), str(text)
        forward = raw.get("forward", False)
        if not isinstance(forward, bool):
            raise RulesError(f"{where}: forward must be true or false")
        if not syntax.startswith("#") or not isinstance(prefills, list) or (
                not prefills and not forward):
            raise RulesError(f"{where}: syntax must start with # and prefills be a list")
        name = str(raw.get("name") or syntax.split()[0].lstrip("#"))
        default = known.get(name)
        aliases = raw.get("aliases", list(default.aliases) if default else [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise RulesError(f"{where}: aliases must be a list of strings")
        read_only = raw.get("read_only", default.read_only if default else False)
        if not isinstance(read_only, bool):
            raise RulesError(f"{where}: read_only must be true or false")
        commands.append(CommandHelp(syntax, text, tuple(str(p) for p in prefills), name,
                                    tuple(aliases), read_only, forward))
    return CommandsHelp(_get(data, "intro", path, str), _get(data, "outro", path, str),
                        tuple(commands))


def _optional(data: dict[str, Any], key: str, where: Path) -> tuple[str, ...]:
    """A list added after 0.1.0: a rules folder copied before then may lack it."""
    return _strings(data, key, where) if key in data else ()


def _regex(pattern: str, where: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RulesError(f"{where}: {pattern!r} is not a valid regular expression: {exc}") \
            from None


def _out_of_office_rule(data: dict[str, Any], path: Path) -> SubjectRule:
    """``out_of_office_subjects`` as a subject rule: each marker begins the subject and is
    followed by what mail clients put after it (a colon, a dash, a parenthesis, the end);
    a person who begins with those words goes on with others ("Réponse automatique reçue…")."""
    markers = (fold(v) for v in _strings(data, "out_of_office_subjects", path))
    return SubjectRule("out_of_office", "l'objet d'une réponse d'absence", tuple(
        re.compile(rf"^{re.escape(marker)}\s*([:(\-–—]|$)") for marker in markers))


def _tables(data: dict[str, Any], key: str, path: Path, fields: tuple[str, ...]
            ) -> list[tuple[str, tuple[Any, ...]]]:
    """Each table of the array ``key`` (``[[key]]``), as (where, its ``fields``); a
    :class:`RulesError` naming the table if one lacks a field."""
    found = []
    for index, raw in enumerate(data.get(key, [])):
        where = f"{path}: {key}[{index}]"
        try:
            found.append((where, tuple(raw[f] for f in fields)))
        except (KeyError, TypeError) as exc:
            raise RulesError(f"{where}: missing {exc}") from None
    return found


def _subject_rules(data: dict[str, Any], path: Path) -> tuple[SubjectRule, ...]:
    rules = []
    for where, (name, reason, patterns) in _tables(data, "subject_rules", path,
                                                   ("name", "reason", "patterns")):
        name, reason = str(name), str(reason)
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            raise RulesError(f"{where}: patterns must be a list of strings")
        rules.append(SubjectRule(name, reason, tuple(_regex(p, f"{where} ({name})")
                                                      for p in patterns)))
    return tuple(rules)
