"""The chain: a table of links (rule, outcome), and the one interpreter that walks it.

Learnt from GNU Mailman 3's chains: the order of the rules is data, not control flow.
Every rule has one signature, ``rule(msg, ctx) -> reason | None``: it matches by
returning why, in French, for the auditor. A rule that finds something the handler will
need (the form's fields, the thread, the commands, a rating) leaves it on the context,
and the decision carries it, so that no handler parses or classifies again.

The interpreter records every rule that matched, the one that decided first, and every
rule that ran and did not match: the ``inbound`` row can then explain any decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy.orm import Session

from bot.core.states import Action
from bot.intake.commandline import Command, CommandError
from bot.intake.replies import Reading, read_reply

if TYPE_CHECKING:
    from bot.app import App
    from bot.intake.forwarded import Letter, Original
    from bot.intake.message import InboundMessage

T = TypeVar("T")


@dataclass(frozen=True)
class Match:
    """A rule that matched, and why."""

    rule: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "reason": self.reason}


@dataclass(frozen=True)
class Thread:
    """The register entry a message answers."""

    kind: str  # "complaint", "ticket" or "contact"
    id: int
    reference: str
    correspondent: str


@dataclass
class Context:
    """What rules read besides the message, and what they found for the handler."""

    session: Session
    app: App
    #: Why the message exceeds ``[limits]``, when it does (worked out by the pipeline).
    over_limit: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    thread: Thread | None = None
    bounced: tuple[int, ...] = ()
    commands: tuple[Command, ...] = ()
    command_error: CommandError | None = None
    rating: str = ""
    #: The fields a submission of reclambot's own web form was validated with, given by
    #: the web layer: what is registered is exactly what was checked, never read back.
    given_fields: dict[str, str] | None = None
    #: The first contact's reference came signed (the form link's): it may link them.
    signed_reference: bool = False
    #: The sender's new text, once a rule read it (:meth:`reading`).
    new_text: str = ""
    #: What the reader of replies took out of it, recorded with the rules that matched.
    read: list[Match] = field(default_factory=list)
    #: What a member of staff passed on: the message she forwards, or a letter.
    forwarded: Original | Letter | None = None
    _memo: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, work: Callable[[], T]) -> T:
        """``work()``, computed once per message for every rule that needs it."""
        if key not in self._memo:
            self._memo[key] = work()
        result: T = self._memo[key]
        return result

    def reading(self, msg: InboundMessage) -> Reading:
        """The new text of ``msg`` (:mod:`bot.intake.replies`), read once; what was taken
        out of it is recorded on the message's row with the rules that matched."""

        def read() -> Reading:
            reading = read_reply(msg, self.app.rulebook.replies)
            self.new_text = reading.text
            self.read.extend(Match(f"reply.{cut.rule}", f"retiré du texte lu : {cut.reason}")
                             for cut in reading.cuts)
            return reading

        return self.once("reading", read)


Rule = Callable[["InboundMessage", Context], "str | None"]


@dataclass(frozen=True)
class Goto:
    """Go on in another chain."""

    chain: str


@dataclass(frozen=True)
class Decide:
    """Stop here with ``action``; ``rule`` and ``reason``, when given, are recorded as the
    deciding match (a chain's last word, e.g. "no tag: left for a person")."""

    action: Action
    rule: str = ""
    reason: str = ""


Outcome = Action | Goto | Decide


@dataclass(frozen=True)
class Link:
    """A rule, and where a match leads."""

    rule: Rule
    outcome: Outcome
    #: The name recorded; the function's own name unless the rule is built from data.
    name: str = ""

    @property
    def rule_name(self) -> str:
        return self.name or self.rule.__name__


@dataclass(frozen=True)
class Chain:
    """Links tried in order; the first match leads on, else ``otherwise`` does.

    With ``every``, all the links run and all their matches are recorded before the first
    match's outcome is taken: the robot rules, so that the row says every reason a
    message is a machine's.
    """

    name: str
    links: tuple[Link, ...]
    otherwise: Outcome
    every: bool = False


@dataclass(frozen=True)
class Decision:
    """The action chosen, the rules that led to it (the deciding one first), the rules
    that ran without matching, and everything the handler needs."""

    action: Action
    matches: tuple[Match, ...]
    passed: tuple[str, ...] = ()
    thread: Thread | None = None
    fields: dict[str, str] = field(default_factory=dict)
    bounced: tuple[int, ...] = ()  # outbox rows a delivery report says failed
    commands: tuple[Command, ...] = ()
    command_error: CommandError | None = None
    rating: str = ""
    #: The sender's new text, without what her client quoted or added.
    new_text: str = ""
    #: The form's reference to a first contact came signed (the served form's link).
    signed_reference: bool = False
    #: What a member of staff passed on (:mod:`bot.intake.forwarded`).
    forwarded: Original | Letter | None = None


def run(chains: dict[str, Chain], start: str, msg: InboundMessage, ctx: Context) -> Decision:
    """Walk ``chains`` from ``start`` until an outcome decides."""
    matched: list[Match] = []
    passed: list[str] = []
    deciding: int | None = None  # the match that chose the outcome: recorded first
    chain = chains[start]
    for _ in range(len(chains) + 1):  # a chain is entered once at most: no loops
        outcome: Outcome | None = None
        for link in chain.links:
            reason = link.rule(msg, ctx)
            if reason is None:
                passed.append(link.rule_name)
                continue
            matched.append(Match(link.rule_name, reason))
            if outcome is None:
                outcome, deciding = link.outcome, len(matched) - 1
            if not chain.every:
                break
        if outcome is None:
            outcome = chain.otherwise
            if isinstance(outcome, Decide) and outcome.rule:
                matched.append(Match(outcome.rule, outcome.reason))
                deciding = len(matched) - 1
        if isinstance(outcome, Goto):
            chain = chains[outcome.chain]
            continue
        action = outcome.action if isinstance(outcome, Decide) else outcome
        if deciding is not None:
            matched.insert(0, matched.pop(deciding))
        return Decision(action, (*matched, *ctx.read), tuple(passed), thread=ctx.thread,
                        fields=ctx.fields, bounced=ctx.bounced, commands=ctx.commands,
                        command_error=ctx.command_error, rating=ctx.rating,
                        new_text=ctx.new_text, signed_reference=ctx.signed_reference,
                        forwarded=ctx.forwarded)
    raise AssertionError(f"the chains loop from {start!r}")  # a table written wrong
