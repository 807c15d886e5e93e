"""``reclambot form export``: the official form as one static HTML file, for an
organisation that wants it inside its own site. Same fields, same names, posting to
``[web] public_url``: the submissions are checked and registered by ``reclambot serve``.

A static page cannot carry the CSRF token of a served page: what it posts is shown back
on the served form, filled in, to be confirmed once (and is registered then). Nothing is
registered from a post without the token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.clock import local
from bot.errors import UsageError
from bot.web.server import HIDDEN_FIELDS

if TYPE_CHECKING:
    from bot.app import App


def export_form(app: App, output: Path) -> Path:
    """Write the form in force today as a static HTML file at ``output``."""
    public = app.config.web.public_url
    if not public:
        raise UsageError("form export : indiquez [web] public_url (l'adresse où reclambot "
                         "serve reçoit les envois)")
    version = app.rulebook.current_form(local(app.clock()).date())
    html = app.renderer.render_template(
        "web/export.html", base=public, version=version, action=f"{public}/reclamation",
        fields=[f for f in version.fields if f.key not in HIDDEN_FIELDS],
        limits=app.config.limits, csrf="", values={}, errors={}, reference="",
        reference_sig="")
    output.write_text(html, encoding="utf-8")
    return output
