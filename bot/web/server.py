"""``reclambot serve``: the Starlette application and its pages.

Every page is rendered from ``templates/web/`` with autoescaping: what a complainant
typed is only ever a value in a template, escaped, never markup. The database work of a
request runs in a worker thread (SQLAlchemy is synchronous); the acknowledgement is sent
after the response, by the same outbox the bot's run uses.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from bot.core.clock import local
from bot.core.states import ComplaintStatus
from bot.core.text import typographie_html, visible
from bot.outbound.outbox import send_pending
from bot.rulebook import LONGEST_TEXT
from bot.store.models import Complaint, Erasure
from bot.web.guard import BodyLimit, Csrf, Failsafe, RateLimiter, SecurityHeaders
from bot.web.submit import (
    ATTACHMENTS,
    Upload,
    check,
    digest,
    message_id,
    message_of,
    posted_before,
    register,
)

if TYPE_CHECKING:
    from bot.app import App
    from bot.outbound.sinks import Sink
    from bot.rulebook import FormVersion

log = logging.getLogger(__name__)

#: Room for the text fields beside the attachments in one request body.
FORM_OVERHEAD = 256 * 1024
#: The fields the page never shows: the version is the page's, the reference the link's.
HIDDEN_FIELDS = ("form_version", "reference")



#: The pages set in French typography as emails are: those that hold no form, whose
#: fields would carry it into what she sends back.
_TYPESET = frozenset({"followup", "message"})

class WebForm:
    """The pages of one organisation, with what they need: the app, the tokens, the
    rate limits, and a way to send the outbox."""

    def __init__(self, app: App, sink: Callable[[], Sink] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.app = app
        self.sink = sink
        self.csrf = Csrf(app.tokens) if clock is None else Csrf(app.tokens, clock)
        web = app.config.web
        self.per_ip = RateLimiter(web.submissions_per_ip_per_hour, 3600)
        self.per_address = RateLimiter(web.submissions_per_address_per_day, 86400)
        self.base = ""  # pages link to the server's own paths
        self.https = web.public_url.startswith("https://")
        self.cookie = Csrf.SECURE_COOKIE if self.https else Csrf.COOKIE
        self.claimant = f"web:{socket.gethostname()[:40]}:{os.getpid()}"
        self._asked = threading.Lock()
        self._sending = self._more = False

    # --- Pages ---------------------------------------------------------------------------

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.app.renderer.render_template(f"web/{name}.html", base=self.base, **context)
        if name in _TYPESET:
            html = typographie_html(html)
        return HTMLResponse(html, status_code=status)

    def message(self, status: int, title: str, *paragraphs: str, back: bool = False
                ) -> HTMLResponse:
        return self.page("message", status, title=title, paragraphs=paragraphs, back=back)

    def version(self) -> FormVersion:
        return self.app.rulebook.current_form(local(self.app.clock()).date())

    def form(self, request: Request, status: int = 200, values: dict[str, str] | None = None,
             problems: tuple[Any, ...] = (), reference: str = "", reference_sig: str = "",
             confirm: bool = False, had_files: bool = False) -> HTMLResponse:
        cookie, token = self.csrf.issue(request.cookies.get(self.cookie))
        version = self.version()
        errors: dict[str, str] = {}
        for problem in problems:
            errors.setdefault(problem.key, problem.message)
        response = self.page(
            "form", status, title="Formuler une réclamation", version=version,
            fields=[f for f in version.fields if f.key not in HIDDEN_FIELDS],
            values=values or {}, problems=problems, errors=errors, csrf=token,
            reference=reference, reference_sig=reference_sig, action="/reclamation",
            limits=self.app.config.limits, confirm=confirm, had_files=had_files)
        response.set_cookie(self.cookie, cookie, max_age=4 * 3600, httponly=True,
                            samesite="lax", secure=self.https, path="/")
        return response

    # --- Routes --------------------------------------------------------------------------

    async def show_form(self, request: Request) -> Response:
        reference = request.query_params.get("ref", "")
        signature = request.query_params.get("sig", "")
        if reference and not self._signed_reference(reference, signature):
            return self.invalid_link()
        return self.form(request, reference=reference, reference_sig=signature)

    def _signed_reference(self, reference: str, signature: str) -> bool:
        return self.app.tokens.verify("ref", reference, signature) if signature else False

    def invalid_link(self) -> HTMLResponse:
        return self.message(400, "Ce lien n'est pas valable",
                            "Le lien que vous avez suivi a été modifié ou n'est pas complet. "
                            "Utilisez le lien de notre e-mail tel quel, ou remplissez le "
                            "formulaire sans lien.", back=True)

    async def submit(self, request: Request) -> Response:
        limits = self.app.config.limits
        form = await request.form(max_files=limits.max_attachments + 1, max_fields=60,
                                  # Room for the longest field in UTF-8 (4 bytes a
                                  # character at most): the length is checked with the
                                  # field, and said next to it.
                                  max_part_size=4 * LONGEST_TEXT + 1024)
        try:
            return await self._submit(request, form)
        finally:
            await form.close()

    async def _submit(self, request: Request, form: Any) -> Response:
        token = str(form.get("csrf", ""))
        if not token and form.get("origine") == "export":
            # The exported static form: shown back filled in, to be confirmed once here.
            keys = self._field_keys()
            values = {k: v for k, v in _texts(form).items() if k in keys}
            had_files = any(isinstance(v, UploadFile) and v.filename
                            for v in form.getlist(ATTACHMENTS))
            return self.form(request, values=values, confirm=True, had_files=had_files)
        submission = self.csrf.check(request.cookies.get(self.cookie), token)
        if submission is None:
            return self.message(403, "Page expirée",
                                "Cette page a expiré ou n'a pas été ouverte depuis notre site. "
                                "Rouvrez le formulaire ; ce que vous aviez écrit n'a pas été "
                                "enregistré.", back=True)
        if str(form.get("site_web", "")):
            log.info("web form: honeypot filled, submission refused")
            return self.message(400, "Envoi refusé",
                                "Votre envoi n'a pas pu être accepté. Si vous êtes une "
                                "personne, écrivez-nous à l'adresse ci-dessous.")
        client = request.client.host if request.client else "inconnu"
        if not self.per_ip.allow(client):
            return self.too_many()
        values = {k: v for k, v in _texts(form).items() if k not in ("csrf", "site_web")}
        reference, signature = values.pop("reference", ""), values.pop("reference_sig", "")
        if reference and not self._signed_reference(reference, signature):
            return self.invalid_link()
        if reference:
            values["reference"] = reference
        uploads = [Upload(visible(item.filename or "") or "piece", item.content_type or "",
                          await item.read())
                   for item in form.getlist(ATTACHMENTS)
                   if isinstance(item, UploadFile) and item.filename]
        now = self.app.clock()
        validation = check(self.app, values, uploads, local(now).date())
        if not validation.conforming:
            shown = {k: v for k, v in values.items() if k not in HIDDEN_FIELDS}
            return self.form(request, 422, shown, validation.problems, reference, signature)
        if not self.per_address.allow(validation.values["email"]):
            return self.too_many()
        record = message_id(self.app, submission, digest(validation, uploads))
        before = await run_in_threadpool(posted_before, self.app, submission)
        if before is not None and before != record:
            return self.reposted()
        raw = message_of(self.app, validation, uploads, client, submission, now)
        number = await run_in_threadpool(register, self.app, raw, submission, now,
                                         validation.values)
        if number is not None and await run_in_threadpool(
                posted_before, self.app, submission) != record:
            return self.reposted()  # the same page posted at once with something else
        if number is None:
            return self.message(500, "Envoi non enregistré",
                                "Votre réclamation n'a pas pu être enregistrée. Réessayez "
                                "dans quelques minutes ou écrivez-nous.", back=True)
        token = self.app.tokens.follow_up(number)
        task = BackgroundTask(self.send) if self.sink is not None else None
        return RedirectResponse(f"/suivi/{token}?recue=1", status_code=303, background=task)

    def _field_keys(self) -> set[str]:
        return {f.key for f in self.version().fields if f.key not in HIDDEN_FIELDS}

    def failed(self) -> HTMLResponse:
        return self.message(500, "Erreur du serveur",
                            "Une erreur nous a empêchés de traiter votre demande ; rien n'a "
                            "été enregistré. Réessayez dans quelques minutes, ou écrivez-nous "
                            "à l'adresse ci-dessous.", back=True)

    def reposted(self) -> HTMLResponse:
        return self.message(409, "Page déjà envoyée",
                            "Cette page a déjà servi à envoyer une réclamation, avec un "
                            "autre contenu : ce nouvel envoi n'a pas été enregistré. Pour "
                            "une autre réclamation, rouvrez le formulaire.", back=True)

    def too_many(self) -> HTMLResponse:
        return self.message(429, "Trop d'envois",
                            "Nous avons reçu beaucoup d'envois depuis votre connexion ou pour "
                            "cette adresse. Merci de réessayer plus tard, ou d'écrire "
                            "directement à l'adresse ci-dessous.")

    def send(self) -> None:
        """The outbox, now: the acknowledgement leaves without waiting for the bot's run.

        One pass at a time: a submission arriving during a pass asks for one more, which
        sends everything committed meanwhile over one connection.
        """
        assert self.sink is not None
        with self._asked:
            self._more = True
            if self._sending:
                return
            self._sending = True
        try:
            while True:
                with self._asked:
                    if not self._more:
                        self._sending = False
                        return
                    self._more = False
                try:
                    send_pending(self.app, self.sink(), claimant=self.claimant)
                except Exception:  # the run sends it at its next pass: never lost
                    log.exception("web: outbox not sent now; the bot's run will send it")
        except BaseException:
            with self._asked:
                self._sending = False
            raise

    async def follow_up(self, request: Request) -> Response:
        number = self.app.tokens.follow_up_number(request.path_params["token"])
        if number is None:
            return self.not_found()
        found = await run_in_threadpool(self._complaint, number)
        if found is None:
            return self.not_found()
        complaint, erased = found
        if erased:
            return self.message(410, "Réclamation effacée",
                                f"Les données de la réclamation {number} ont été effacées à la "
                                "fin de leur durée de conservation (RGPD) : cette page n'existe "
                                "plus. Pour toute question, écrivez-nous.")
        assert complaint is not None
        answered = complaint.status in (ComplaintStatus.ANSWERED, ComplaintStatus.CLOSED) \
            and bool(complaint.response_text)
        # The mediator where she was told of him (a consumer, after a refusal in part or
        # in whole): the page says it again, with the response's number to quote.
        mediation = self.app.config.mediation if complaint.mediation_sent_at else None
        return self.page("followup", title=f"Réclamation {number}", complaint=complaint,
                         answered=answered, mediation=mediation,
                         just_registered=request.query_params.get("recue") == "1")

    def _complaint(self, number: str) -> tuple[Complaint | None, bool] | None:
        with self.app.sessions() as session:
            complaint = session.scalar(select(Complaint).where(Complaint.number == number))
            if complaint is not None and complaint.purged_at is None:
                return complaint, False
            if complaint is not None or session.scalar(
                    select(Erasure.id).where(Erasure.reference == number).limit(1)):
                return None, True
        return None

    def not_found(self) -> HTMLResponse:
        return self.message(404, "Page introuvable",
                            "Cette adresse ne correspond à aucune réclamation. Vérifiez le lien "
                            "de votre accusé de réception.")

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/reclamation", status_code=303)

    async def stylesheet(self, request: Request) -> Response:
        return FileResponse(self._asset("reclambot.css"), media_type="text/css")

    def _asset(self, name: str) -> Path:
        return self.app.config.templates_dir / "web" / name


def _texts(form: Any) -> dict[str, str]:
    """The text fields of a posted form (its files aside)."""
    return {key: str(value) for key, value in form.multi_items()
            if not isinstance(value, UploadFile)}


def make_web_app(app: App, sink: Callable[[], Sink] | None = None,
                 clock: Callable[[], float] | None = None) -> Any:
    """The ASGI application of ``reclambot serve`` for ``app``."""
    pages = WebForm(app, sink, clock)
    routes = [
        Route("/", pages.home),
        Route("/reclamation", pages.show_form, methods=["GET"]),
        Route("/reclamation", pages.submit, methods=["POST"]),
        Route("/suivi/{token}", pages.follow_up),
        Route("/static/reclambot.css", pages.stylesheet),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return pages.not_found()

    async def http_error(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 400)
        if status == 404:
            return pages.not_found()
        return pages.message(status, "Demande refusée",
                             "Votre demande n'a pas pu être lue. Rouvrez le formulaire et "
                             "recommencez ; si cela se reproduit, écrivez-nous.", back=True)

    async def server_error(request: Request, exc: Exception) -> Response:
        return pages.failed()

    starlette = Starlette(routes=routes, exception_handlers={
        404: not_found, HTTPException: http_error, Exception: server_error})
    limits = app.config.limits
    # No larger than the largest email the bot accepts: the submission becomes one.
    limit = limits.max_message_bytes + FORM_OVERHEAD

    async def too_large(scope: Any, receive: Any, send: Any) -> None:
        response = pages.message(413, "Envoi trop volumineux",
                                 "Les pièces jointes dépassent ce que nous pouvons recevoir "
                                 f"({limits.max_message_bytes // 1048576} Mo en tout). "
                                 "Réduisez-les ou envoyez-les par e-mail.", back=True)
        await response(scope, receive, send)

    async def failed(scope: Any, receive: Any, send: Any) -> None:
        await pages.failed()(scope, receive, send)

    web = app.config.web
    wrapped: Any = BodyLimit(starlette, limit, too_large)
    wrapped = SecurityHeaders(wrapped, https=web.public_url.startswith("https://"))
    if web.trusted_proxies:
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        wrapped = ProxyHeadersMiddleware(wrapped, trusted_hosts=list(web.trusted_proxies))
    return Failsafe(wrapped, failed)


def check_listen(host: str, port: int) -> None:
    """Refuse, in one French line naming the key, an address another program holds (or
    this one may not take), before saying the form is served there."""
    from bot.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        reason = ("est déjà utilisé par un autre programme" if exc.errno == errno.EADDRINUSE
                  else f"ne peut pas être ouvert ({exc.strerror or exc})")
        raise ConfigError("web.listen", f"{host}:{port} {reason} : choisissez un autre "
                                        "port (ou arrêtez l'autre programme)") from None


def serve(app: App, sink: Callable[[], Sink] | None = None) -> None:
    """Run the web form until interrupted (uvicorn, one process)."""
    import uvicorn

    web = app.config.web
    log.debug("serving the form on http://%s/reclamation (public: %s)", web.listen,
             web.public_url or "-")
    uvicorn.run(make_web_app(app, sink), host=web.host, port=web.port, proxy_headers=False,
                server_header=False, log_level="warning")

