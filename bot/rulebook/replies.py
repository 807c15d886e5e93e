"""What mail clients add to a reply (``rules/replies.toml``), loaded once.

The reader that applies these rules is :mod:`bot.intake.replies`; here they are only read
and checked, so that a mistake in a copied rules folder is a :class:`RulesError` naming
the rule, at start-up.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import RulesError

CUTS = ("element", "rest")
_COMMON = {"name", "reason", "clients"}
_HTML_KEYS = _COMMON | {"cut", "tag", "class", "id", "attribute", "style", "class_matching"}
_LINE_KEYS = _COMMON | {"pattern", "followed_by"}
_TOP_KEYS = {"html", "lines", "signatures", "signature_separator", "trailing_rules"}


@dataclass(frozen=True)
class HtmlRule:
    """An element a client wraps its quote (or its own signature) in."""

    name: str
    reason: str
    clients: tuple[str, ...]
    cut: str
    tag: str = ""
    class_: str = ""
    id: str = ""
    attribute: tuple[str, str] | None = None
    style: re.Pattern[str] | None = None
    #: A regular expression searched in the class attribute (for classes the client
    #: prefixes with a random string, as Yahoo does: ``ydp1a2b3yahoo_quoted``).
    class_matching: re.Pattern[str] | None = None

    def matches(self, tag: str, attributes: dict[str, str]) -> bool:
        """Whether an element ``tag`` with ``attributes`` is this rule's (every key given
        must match)."""
        if self.tag and tag != self.tag:
            return False
        if self.class_ and self.class_ not in attributes.get("class", "").split():
            return False
        if self.id and attributes.get("id", "") != self.id:
            return False
        if self.class_matching is not None and not self.class_matching.search(
                attributes.get("class", "")):
            return False
        if self.attribute is not None:
            name, value = self.attribute
            if attributes.get(name, "").lower() != value:
                return False
        return self.style is None or bool(self.style.search(attributes.get("style", "")))


@dataclass(frozen=True)
class LineRule:
    """A line that opens what the client quotes (an attribution, a separator, a header
    block when ``followed_by`` matches one of the next three lines)."""

    name: str
    reason: str
    clients: tuple[str, ...]
    pattern: re.Pattern[str]
    followed_by: re.Pattern[str] | None = None


@dataclass(frozen=True)
class ReplyRules:
    """Everything in ``rules/replies.toml``."""

    html: tuple[HtmlRule, ...]
    lines: tuple[LineRule, ...]
    signatures: tuple[LineRule, ...]
    signature_separator: re.Pattern[str]
    trailing_rules: re.Pattern[str]

    @property
    def names(self) -> tuple[str, ...]:
        """Every rule's name (each has its fixture in ``tests/data/replies``)."""
        return (*(r.name for r in self.html), *(r.name for r in self.lines),
                *(r.name for r in self.signatures))


def _regex(pattern: object, where: str) -> re.Pattern[str]:
    if not isinstance(pattern, str):
        raise RulesError(f"{where}: a regular expression must be a string")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise RulesError(f"{where}: {pattern!r} is not a valid regular expression: {exc}") \
            from None


def _common(raw: Any, where: str, keys: set[str]) -> tuple[str, str, tuple[str, ...]]:
    if not isinstance(raw, dict):
        raise RulesError(f"{where}: must be a table")
    unknown = sorted(set(raw) - keys)
    if unknown:
        # A key meant for the top of the file, written below a table, lands in it.
        raise RulesError(f"{where}: unknown key {', '.join(unknown)}")
    try:
        name, reason, clients = raw["name"], raw["reason"], raw["clients"]
    except KeyError as exc:
        raise RulesError(f"{where}: missing {exc}") from None
    if not isinstance(name, str) or not isinstance(reason, str) or not name:
        raise RulesError(f"{where}: name and reason must be strings")
    if not isinstance(clients, list) or not all(isinstance(c, str) for c in clients):
        raise RulesError(f"{where} ({name}): clients must be a list of strings")
    return name, reason, tuple(clients)


def _html_rule(raw: Any, where: str) -> HtmlRule:
    name, reason, clients = _common(raw, where, _HTML_KEYS)
    where = f"{where} ({name})"
    cut = raw.get("cut")
    if cut not in CUTS:
        raise RulesError(f"{where}: cut must be one of {', '.join(CUTS)}")
    attribute = None
    if "attribute" in raw:
        key, sep, value = str(raw["attribute"]).partition("=")
        if not sep or not key:
            raise RulesError(f"{where}: attribute must read name=value")
        attribute = (key.strip().lower(), value.strip().lower())
    keys = {"tag", "class", "id", "attribute", "style", "class_matching"} & set(raw)
    if not keys - {"tag"}:
        raise RulesError(f"{where}: give a class, an id, an attribute or a style")
    return HtmlRule(
        name, reason, clients, str(cut), tag=str(raw.get("tag", "")).lower(),
        class_=str(raw.get("class", "")), id=str(raw.get("id", "")), attribute=attribute,
        style=_regex(raw["style"], where) if "style" in raw else None,
        class_matching=(_regex(raw["class_matching"], where) if "class_matching" in raw
                        else None))


def _line_rule(raw: Any, where: str) -> LineRule:
    name, reason, clients = _common(raw, where, _LINE_KEYS)
    where = f"{where} ({name})"
    if "pattern" not in raw:
        raise RulesError(f"{where}: missing 'pattern'")
    followed = _regex(raw["followed_by"], where) if "followed_by" in raw else None
    return LineRule(name, reason, clients, _regex(raw["pattern"], where), followed)


def load_reply_rules(path: Path) -> ReplyRules:
    """Read ``replies.toml`` at ``path``."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{path}: missing") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: {exc}") from None

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise RulesError(f"{path}: unknown key {', '.join(unknown)}")

    def tables(key: str) -> list[tuple[Any, str]]:
        found = data.get(key, [])
        if not isinstance(found, list):
            raise RulesError(f"{path}: {key} must be an array of tables ([[{key}]])")
        return [(raw, f"{path}: {key}[{index}]") for index, raw in enumerate(found)]

    rules = ReplyRules(
        html=tuple(_html_rule(raw, where) for raw, where in tables("html")),
        lines=tuple(_line_rule(raw, where) for raw, where in tables("lines")),
        signatures=tuple(_line_rule(raw, where) for raw, where in tables("signatures")),
        signature_separator=_regex(data.get("signature_separator", r"^-- ?$"),
                                   f"{path}: signature_separator"),
        trailing_rules=_regex(data.get("trailing_rules", r"^$"), f"{path}: trailing_rules"),
    )
    seen: set[str] = set()
    for name in rules.names:
        if name in seen:
            raise RulesError(f"{path}: two rules are named {name}")
        seen.add(name)
    return rules


@functools.cache
def shipped_reply_rules() -> ReplyRules:
    """The rules shipped with the package (read once)."""
    from bot.config import package_data_dir

    return load_reply_rules(package_data_dir("rules") / "replies.toml")
