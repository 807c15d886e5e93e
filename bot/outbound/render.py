"""Emails from templates: ``templates/<kind>.subject.txt``, ``<kind>.txt`` and ``<kind>.html``.

Complainants' text only ever reaches Jinja2 as *context values*, never as template source;
HTML templates are autoescaped and every template fails loudly on an undefined name.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.clock import date_fr, datetime_fr, local, utcnow
from bot.core.states import ComplaintStatus, state_label
from bot.core.text import number_fr, typographie, typographie_html
from bot.errors import TemplateError


def complaint_status(code: str) -> str:
    """Jinja filter ``statut``: a complaint's state in French."""
    return state_label(ComplaintStatus, code)


@dataclass(frozen=True)
class Rendered:
    """A rendered email: one-line subject, plain text and HTML alternatives."""

    subject: str
    text: str
    html: str


#: One environment per templates folder, shared by every organisation using it: compiled
#: templates cost about half a megabyte per organisation otherwise.
_ENVIRONMENTS: dict[str, Any] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _environment(templates_dir: Path) -> Any:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    key = str(templates_dir.resolve())
    with _ENVIRONMENTS_LOCK:
        env = _ENVIRONMENTS.get(key)
        if env is None:
            env = Environment(
                loader=FileSystemLoader(key),
                autoescape=select_autoescape(enabled_extensions=("html",),
                                             default_for_string=False),
                undefined=StrictUndefined,
                keep_trailing_newline=False,
                trim_blocks=True,
                lstrip_blocks=True,
                # Templates are read once per process, like the rules: checking every
                # file's modification time before each email cost a third of the rendering.
                auto_reload=False,
            )
            env.filters["date_fr"] = date_fr
            env.filters["statut"] = complaint_status
            env.filters["nombre"] = number_fr
            env.filters["datetime_fr"] = datetime_fr
            _ENVIRONMENTS[key] = env
        return env


class Renderer:
    """Loads templates from one folder; renders a *kind* of email with a context."""

    def __init__(self, templates_dir: Path, globals_: dict[str, Any] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.env = _environment(templates_dir)
        # What is this organisation's goes with each render, not into the environment:
        # organisations with the same templates share their compiled code.
        now = clock or utcnow
        self.globals: dict[str, Any] = {
            **(globals_ or {}),
            # The day an email is written, in Paris (the commands' prefilled dates).
            "today": lambda: local(now()).date().isoformat(),
        }

    def render_template(self, name: str, **context: Any) -> str:
        """Render one template of the folder (a page, a report) with this renderer's globals."""
        return self.env.get_template(name).render(**self.globals, **context)

    def render(self, kind: str, **context: Any) -> Rendered:
        """Render the three parts of ``kind``; :class:`TemplateError` names what failed."""
        from jinja2 import TemplateError as JinjaError

        parts: list[str] = []
        for suffix in ("subject.txt", "txt", "html"):
            name = f"{kind}.{suffix}"
            try:
                parts.append(self.render_template(name, **context))
            except JinjaError as exc:
                raise TemplateError(f"templates/{name}: {exc}") from exc
            if suffix == "subject.txt":
                # The bodies may quote their subject (the commands' mailto: links).
                context = {**context, "email_subject": " ".join(parts[0].split())}
        subject = " ".join(parts[0].split())  # one line: no header injection through a value
        # French typography on what is read, never on the subject (a header, quoted and
        # searched for by people and clients alike).
        return Rendered(subject=subject, text=typographie(parts[1].strip()) + "\n",
                        html=typographie_html(parts[2]))

    def kinds(self) -> list[str]:
        """Every email kind that has its three templates."""
        names = set(self.env.list_templates())
        return sorted(
            n.removesuffix(".subject.txt")
            for n in names
            if n.endswith(".subject.txt")
            and {n.replace(".subject.txt", ".txt"), n.replace(".subject.txt", ".html")} <= names
        )
