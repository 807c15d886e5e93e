"""The ``reclambot`` command. Imports are lazy: ``reclambot --help`` loads almost nothing."""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ReclambotError, UsageError

if TYPE_CHECKING:
    from bot.app import App
    from bot.config import ImapConfig
    from bot.ops.check import Servers
    from bot.ops.runner import RunSummary

log = logging.getLogger("bot")


#: argparse's own words (it reads them through gettext, which has no French catalogue
#: for it): its help and its errors speak as the rest of the terminal does.
_ARGPARSE_FR = {
    "usage: ": "utilisation : ",
    "positional arguments": "arguments",
    "options": "options",
    "show this help message and exit": "affiche cette aide",
    "%(prog)s: error: %(message)s\n": "%(prog)s : erreur : %(message)s\n",
    "the following arguments are required: %s": "arguments obligatoires manquants : %s",
    "unrecognized arguments: %s": "arguments inconnus : %s",
    "invalid choice: %(value)r (choose from %(choices)s)":
        "choix invalide : %(value)r (possibles : %(choices)s)",
    "argument %(argument_name)s: %(message)s": "argument %(argument_name)s : %(message)s",
    "invalid %(type)s value: %(value)r": "valeur invalide : %(value)r",
    "expected one argument": "une valeur est attendue",
    "expected at least one argument": "au moins une valeur est attendue",
    "not allowed with argument %s": "incompatible avec l'argument %s",
    "one of the arguments %s is required": "l'un des arguments %s est obligatoire",
    "ambiguous option: %(option)s could match %(matches)s":
        "option ambiguë : %(option)s peut être %(matches)s",
    "ignored explicit argument %r": "argument explicite ignoré : %r",
}


def _parser() -> argparse.ArgumentParser:
    argparse._ = lambda text: _ARGPARSE_FR.get(text, text)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(
        prog="reclambot",
        description="Applique par e-mail la procédure de traitement des réclamations d'un "
        "organisme de formation.",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="fichier de configuration (par défaut : "
                             "$RECLAMBOT_CONFIG ou ./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="journal détaillé (tout, en anglais : pour le support)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMANDE")
    # Many organisations on one installation (docs/hosting.md): DIR/<slug>/config.toml.
    fleet = argparse.ArgumentParser(add_help=False)
    fleet.add_argument("--organisations", type=Path, metavar="DIR",
                       default=Path(os.environ["RECLAMBOT_ORGANISATIONS"])
                       if os.environ.get("RECLAMBOT_ORGANISATIONS") else None,
                       help="dossier des organismes, un DIR/<nom>/config.toml chacun "
                            "(par défaut : $RECLAMBOT_ORGANISATIONS)")
    fleet.add_argument("--organisation", metavar="SLUG", default=None,
                       help="l'organisme de DIR que cette commande concerne")

    run = commands.add_parser("run", parents=[fleet],
                              help="surveille la boîte et traite les réclamations")
    run.add_argument("--once", action="store_true",
                     help="traite tout ce qui attend, envoie ce qui est dû, puis s'arrête")
    run.add_argument("--coordinator", metavar="URL",
                     default=os.environ.get("RECLAMBOT_COORDINATOR") or None,
                     help="avec --organisations : une base PostgreSQL commune aux "
                          "processus, qui se partagent les organismes "
                          "(par défaut : $RECLAMBOT_COORDINATOR)")
    run.add_argument("--look-every", type=float, default=15.0, metavar="SECONDES",
                     help="avec --organisations : tous les combien DIR et "
                          "les processus sont regardés")

    export = commands.add_parser("export", parents=[fleet],
                                 help="écrit le registre (le dossier d'audit)")
    export.add_argument("--format", choices=["csv", "xlsx", "pdf"], required=True)
    export.add_argument("--output", type=Path, default=None,
                        help="fichier (par défaut : la sortie standard en csv, "
                             "registre-reclamations.FORMAT)")

    def as_of(command: argparse.ArgumentParser) -> None:
        command.add_argument("--as-of", type=_day, default=None, metavar="AAAA-MM-JJ",
                             help="comme ce jour-là (par défaut : aujourd'hui)")

    for name, text in (
        ("remind", "le point du jour de la direction : échéances "
                   "proches et dépassées, quarantaine"),
        ("followup", "relance les tickets incomplets, abandonne les "
                     "oubliés, demande la satisfaction"),
        ("purge", "efface les données personnelles au terme de leur conservation (RGPD)"),
        ("daily", "toutes les tâches du jour : followup, remind, "
                  "purge, et le rapport mensuel à son jour"),
    ):
        as_of(commands.add_parser(name, parents=[fleet], help=text))

    report = commands.add_parser("report", parents=[fleet],
                                 help="indicateurs et graphiques d'une période (HTML + CSV)")
    report.add_argument("--period", default=None, metavar="AAAA-MM", help="un mois")
    report.add_argument("--from", dest="start", type=_day, default=None, metavar="AAAA-MM-JJ")
    report.add_argument("--to", dest="end", type=_day, default=None, metavar="AAAA-MM-JJ",
                        help="dernier jour inclus")
    report.add_argument("--output", type=Path, default=Path("."), help="dossier (par défaut : .)")
    report.add_argument("--send", action="store_true",
                        help="envoie à la direction le rapport du mois "
                             "précédent (comme la tâche mensuelle)")
    as_of(report)

    gdpr = commands.add_parser("gdpr", parents=[fleet],
                               help="les droits d'une personne : exporter ou effacer ses données")
    gdpr_commands = gdpr.add_subparsers(dest="gdpr_command", required=True, metavar="ACTION")
    gdpr_export = gdpr_commands.add_parser("export", help="tout ce qui est conservé sur "
                                                          "une adresse")
    gdpr_export.add_argument("--email", required=True)
    gdpr_export.add_argument("--output", type=Path, default=None, help="fichier zip")
    gdpr_erase = gdpr_commands.add_parser("erase", help="efface ce qui est conservé sur "
                                                        "une adresse")
    gdpr_erase.add_argument("--email", required=True)
    gdpr_erase.add_argument("--yes", action="store_true", help="sans demander de confirmation")

    dossier = commands.add_parser("dossier", parents=[fleet], help="le dossier d'une réclamation")
    dossier_commands = dossier.add_subparsers(dest="dossier_command", required=True,
                                              metavar="ACTION")
    dossier_export = dossier_commands.add_parser(
        "export", help="écrit un dossier dans le dossier DIR/REF (messages, pièces jointes, "
                       "copies des courriels envoyés), où qu'il soit conservé")
    dossier_export.add_argument("reference", metavar="REF", help="par exemple REC-2026-0001")
    dossier_export.add_argument("directory", metavar="DIR", type=Path)

    demo = commands.add_parser("demo", help="fait tourner le bot sur une boîte "
                                            "d'exemple locale, sans serveur")
    demo.add_argument("--dir", type=Path, default=Path("reclambot-demo"),
                      help="dossier de travail (par défaut : ./reclambot-demo)")

    quarantine = commands.add_parser(
        "quarantine", parents=[fleet],
        help="ce qui est en quarantaine et pourquoi ; y remettre des messages")
    quarantine_commands = quarantine.add_subparsers(dest="quarantine_command", required=True,
                                                    metavar="ACTION")
    quarantine_commands.add_parser("list", help="chaque message en quarantaine, avec sa raison")
    retry = quarantine_commands.add_parser(
        "retry", help="après une correction, traite à nouveau ces messages (une fois chacun)")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("uids", nargs="*", default=[], metavar="UID",
                       help="UID montrés par « reclambot quarantine list »")
    which.add_argument("--all", action="store_true", help="tous les messages en quarantaine")

    commands.add_parser("serve", parents=[fleet],
                        help="sert le formulaire officiel et les pages de suivi ([web])")
    form = commands.add_parser("form", help="le formulaire officiel")
    form_commands = form.add_subparsers(dest="form_command", required=True, metavar="ACTION")
    form_export = form_commands.add_parser(
        "export", help="écrit le formulaire en vigueur en page HTML pour le site")
    form_export.add_argument("--output", type=Path, default=Path("formulaire-reclamation.html"),
                             help="fichier (par défaut : formulaire-reclamation.html)")

    commands.add_parser("outbox", parents=[fleet],
                        help="les courriels en attente d'envoi ou en échec")
    commands.add_parser("check", parents=[fleet],
                        help="vérifie la configuration, les serveurs, la base et les modèles")
    commands.add_parser("status", parents=[fleet],
                        help="dernière relève, réclamations ouvertes, envois, quarantaine, erreurs")
    commands.add_parser("init", help="quelques questions, et un config.toml commenté")
    commands.add_parser("upgrade", help="met la base du registre au schéma de cette version")
    auth = commands.add_parser("auth", help="connecte la boîte une fois par OAuth2 (XOAUTH2)")
    auth.add_argument("provider", choices=("microsoft", "google"))
    importer = commands.add_parser(
        "import", help="charge des réclamations passées d'un fichier mbox "
                       "ou d'un Maildir, sans rien envoyer")
    source = importer.add_mutually_exclusive_group(required=True)
    source.add_argument("--mbox", type=Path, help="un fichier mbox")
    source.add_argument("--maildir", type=Path, help="un dossier Maildir")
    return parser


def _day(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"« {value} » n'est pas une date (AAAA-MM-JJ)") from None


@contextmanager
def _app(args: argparse.Namespace, mailbox_secrets: bool = True) -> Iterator[App]:
    """The application for one command, closed when the command is done (without
    ``mailbox_secrets`` for a command that reads the register only)."""
    from bot.app import build_app
    from bot.config import load_config

    clock = None
    day = getattr(args, "as_of", None)
    if day is not None:
        from bot.procedure.jobrun import job_moment

        moment = job_moment(day)
        clock = lambda: moment  # noqa: E731 - the whole command runs "on that day"
    config = load_config(args.config, mailbox_secrets)
    if not args.verbose and args.command != "demo":
        from bot.core.logs import configure

        configure(config.logging.format, config.logging.level)
    app = build_app(config, clock=clock)
    try:
        yield app
    finally:
        app.close()


def _job(name: str) -> Callable[[argparse.Namespace], int]:
    def command(args: argparse.Namespace) -> int:
        from bot.ops.lock import ProcessLock
        from bot.outbound.outbox import send_pending
        from bot.outbound.sinks import make_sink
        from bot.procedure import jobs
        from bot.procedure.purge import purge

        with _app(args) as app, ProcessLock(app):
            day = jobs.today(app)
            if name == "daily":
                results = jobs.run_daily(app, day)
            else:
                job = {"remind": jobs.remind, "followup": jobs.followup, "purge": purge}[name]
                results = [job(app, day)]
            for result in results:
                print(result.line())
            sent = send_pending(app, make_sink(app.config))
            print(f"{sent.sent} courriel(s) envoyé(s)")
        return 0

    return command


def cmd_report(args: argparse.Namespace) -> int:
    from bot.procedure import jobs
    from bot.reporting.report import build_report, write_csv

    with _app(args) as app:
        if args.send:
            from bot.outbound.outbox import send_pending
            from bot.outbound.sinks import make_sink

            result = jobs.monthly_report(app, jobs.today(app), force=True)
            print(result.line())
            print(f"{send_pending(app, make_sink(app.config)).sent} courriel(s) envoyé(s)")
            return 0
        if args.period:
            try:
                start = dt.date.fromisoformat(args.period + "-01")
            except ValueError:
                raise UsageError(
                    f"--period : ce n'est pas un mois (AAAA-MM) : {args.period!r}") from None
            end = (start + dt.timedelta(days=32)).replace(day=1)
        elif args.start and args.end:
            start, end = args.start, args.end + dt.timedelta(days=1)
        else:
            start, end = jobs.previous_month(jobs.today(app))
        args.output.mkdir(parents=True, exist_ok=True)
        last = end - dt.timedelta(days=1)
        stem = f"rapport-reclamations-{start.isoformat()}-{last.isoformat()}"
        from bot.ops.progress import Progress
        from bot.reporting.report import REPORT_STAGES

        with app.sessions() as session, Progress(REPORT_STAGES, "report") as progress:
            report = build_report(session, app, start, end, progress.advance)
        (args.output / f"{stem}.html").write_text(report.html, encoding="utf-8")
        with (args.output / f"{stem}.csv").open("w", encoding="utf-8-sig", newline="") as out:
            write_csv(report, out)
        print(f"{report.figures['received']} réclamation(s) ; rapport écrit dans "
              f"{args.output / stem}.html et .csv")
    return 0


def cmd_gdpr(args: argparse.Namespace) -> int:
    from bot.procedure import gdpr

    with _app(args) as app:
        address = args.email.strip().lower()
        with app.sessions() as session:
            held = gdpr.find(session, address)
        if held.empty():
            print(f"aucune donnée n'est conservée sur {address}")
            return 0
        if args.gdpr_command == "export":
            output = args.output or Path(f"rgpd-{address.replace('@', '_at_')}.zip")
            from bot.ops.progress import Progress

            with Progress(1, "gdpr export") as progress:
                count = gdpr.export(app, address, output, progress.update)
            print(f"{count} fichier(s) sur {address} écrit(s) dans {output}")
            return 0
        references = ", ".join(held.references()) or "(messages seulement)"
        if not args.yes:
            if not sys.stdin.isatty():
                print("reclambot : erreur : gdpr erase : confirmez avec --yes "
                      "(pas de terminal pour demander)",
                      file=sys.stderr)
                return 2
            answer = input(f"Effacer tout ce qui concerne {address} ({references}) ? [oui/non] ")
            if answer.strip().lower() not in ("oui", "o", "yes", "y"):
                print("rien n'a été effacé")
                return 1
        erased, held_back = gdpr.erase(app, address)
        print(f"effacé : {', '.join(erased) or '(messages seulement)'}")
        if held_back:
            print(f"conservé (#conserver) : {', '.join(held_back)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from bot.ops.runner import run_forever, run_once

    if getattr(args, "organisations", None) is not None and args.organisation is None:
        if args.once:
            return _run_once_all(args)
        from bot.ops.fleet import Coordinator, Fleet

        coordinator = Coordinator(args.coordinator) if args.coordinator else None
        try:
            Fleet(args.organisations, look_every=args.look_every,
                  coordinator=coordinator).run_forever()
        finally:
            if coordinator is not None:
                coordinator.close()
        return 0
    with _app(args) as app:
        if args.once:
            print("\n".join(_summary_lines(run_once(app))))
        else:
            run_forever(app)
    return 0


def _summary_lines(summary: RunSummary) -> list[str]:
    """What one pass did, in French: how many messages became what, what was sent."""
    from bot.core.states import ACTION_LABELS

    actions = ", ".join(f"{ACTION_LABELS.get(k, k)} : {v}"
                        for k, v in sorted(summary.actions.items()))
    lines = [f"{summary.fetched} message(s) traité(s)"
             f"{' (' + actions + ')' if actions else ''} ; {summary.sent.sent} envoyé(s), "
             f"{summary.sent.deferred} différé(s), {summary.sent.refused} refusé(s)"]
    if summary.unfiled:
        lines.append(f"{summary.unfiled} message(s) traité(s) mais non classé(s) : leur "
                     "dossier est en échec (voir reclambot status) ; la prochaine relève les "
                     "classe")
    return lines


def _run_once_all(args: argparse.Namespace) -> int:
    """``run --once --organisations DIR``: one pass for every organisation, one after the
    other (a cron job a minute for the whole fleet)."""
    from bot.ops.runner import run_once

    def one(app: App) -> list[str]:
        return [f"  {line}" for line in _summary_lines(run_once(app))]

    return _each_organisation(args, one)


def _each_organisation(args: argparse.Namespace, work: Callable[[App], list[str]]) -> int:
    """``work`` on every organisation of ``--organisations``, its lines under its name;
    one that cannot start or fails says why, and the others are done all the same."""
    from bot.app import build_app
    from bot.ops.fleet import member_config, organisation_paths

    paths = organisation_paths(args.organisations)
    failed = 0
    for slug, path in paths.items():
        print(f"== {slug} ==")
        try:
            app = build_app(member_config(path))
        except ReclambotError as exc:
            print(f"  erreur : {exc}")
            failed += 1
            continue
        try:
            print("\n".join(work(app)))
        except Exception as exc:  # one organisation's failure never stops the others
            log.error("%s: failed: %s", slug, exc, exc_info=not isinstance(
                exc, ReclambotError))
            print(f"  erreur : {exc}")
            failed += 1
        finally:
            app.close()
    print(f"{len(paths)} organisme(s), {failed} en erreur")
    return 1 if failed else 0


def cmd_export(args: argparse.Namespace) -> int:
    from bot.reporting.export import write_csv

    with _app(args) as app, app.sessions() as session:
        if args.format == "csv" and args.output is None:
            write_csv(session, sys.stdout, app.rulebook)
            return 0
        output = args.output or Path(f"registre-reclamations.{args.format}")
        if args.format == "csv":
            with output.open("w", encoding="utf-8-sig", newline="") as out:
                write_csv(session, out, app.rulebook)
        elif args.format == "xlsx":
            from bot.reporting.report import register_workbook

            output.write_bytes(register_workbook(session, app))
        else:
            from bot.reporting.export import register_pdf

            output.write_bytes(register_pdf(session, app.rulebook,
                                            app.config.organisation.name, app.clock()))
        print(f"registre écrit dans {output}", file=sys.stderr)
    return 0


def cmd_dossier(args: argparse.Namespace) -> int:
    from bot.errors import ReferenceRefused
    from bot.store.dossier import export_dossier

    reference = args.reference.strip().upper()
    with _app(args) as app:
        try:
            written = export_dossier(app.dossiers, reference, args.directory)
        except ReferenceRefused:
            print(f"reclambot : erreur : « {args.reference} » n'est pas une référence de "
                  "dossier (par exemple REC-2026-0001)", file=sys.stderr)
            return 2
        except OSError as exc:
            print(f"reclambot : erreur : {system_error(exc)}", file=sys.stderr)
            return 2
    if not written:
        print(f"reclambot : erreur : aucun dossier {reference} dans ce registre",
              file=sys.stderr)
        return 2
    print(f"{len(written)} fichier(s) du dossier {reference} écrit(s) dans "
          f"{args.directory / reference}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.ops.demo import run_demo

    print(run_demo(args.dir))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from bot.core.states import EMAIL_KIND_LABELS, OutboxStatus, state_label
    from bot.reporting.status import unsent

    with _app(args) as app, app.sessions() as session:
        rows = unsent(session)
        for row in rows:
            print(f"{row.id:6} {state_label(OutboxStatus, row.status):16} "
                  f"essais={row.attempts} prochain={row.next_attempt_at:%d/%m/%Y %H:%M} "
                  f"{EMAIL_KIND_LABELS.get(row.kind, row.kind)} : {row.last_error[:80]}")
        print(f"{len(rows)} courriel(s) non envoyé(s)")
    return 0


def cmd_quarantine(args: argparse.Namespace) -> int:
    from bot.errors import LockError
    from bot.ops.lock import ProcessLock
    from bot.ops.quarantine import list_quarantine, quarantine_source, retry
    from bot.ops.runner import run_pass

    with _app(args) as app:
        source = quarantine_source(app)
        try:
            if args.quarantine_command == "list":
                items = list_quarantine(app, source)
            else:
                items = retry(app, source, None if args.all else args.uids)
        finally:
            source.close()
        if args.quarantine_command == "list":
            for item in items:
                print(item.line())
            print(f"{len(items)} message(s) en quarantaine ({app.config.folders.quarantine})")
            return 0
        if not items:
            print("rien en quarantaine")
            return 0
        print(f"{len(items)} message(s) remis dans {app.config.watched_folder}")
        try:
            with ProcessLock(app):
                summary = run_pass(app)
        except LockError:
            # Marked and moved already: the running bot handles them at its next look.
            print("reclambot run est en cours : il les traitera à sa prochaine relève")
            return 0
        actions = ", ".join(f"{k}: {v}" for k, v in sorted(summary.actions.items()))
        print(f"{summary.fetched} message(s) traité(s) ({actions}) ; "
              f"{summary.sent.sent} courriel(s) envoyé(s)")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.ops.check import config_result, run_checks

    config, first = config_result(args.config)
    results = [first, *(run_checks(config) if config is not None else [])]
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


def cmd_import(args: argparse.Namespace) -> int:
    from bot.ops.importer import import_archive, open_archive
    from bot.ops.progress import Progress

    path = args.mbox or args.maildir
    if not path.exists():
        raise UsageError(f"import : {path} introuvable")
    with _app(args) as app:
        source = open_archive(path)
        with Progress(len(source), "import") as progress:
            summary, skipped = import_archive(app, source, progress.advance)
        actions = ", ".join(f"{k}: {v}" for k, v in sorted(summary.actions.items()))
        print(f"{summary.fetched} message(s) importé(s) ({actions}) ; "
              f"{skipped} courriel(s) non envoyé(s)")
    return 0


def _init_probe(imap: ImapConfig) -> Servers | None:
    """``init``: read the new mailbox's recent Authentication-Results, with a password
    asked once and kept nowhere (empty: skip, ``check`` proposes the same later)."""
    import dataclasses
    import getpass

    from bot.config import Secret
    from bot.ops.check import mailbox_authentication

    password = getpass.getpass(
        f"Mot de passe de {imap.username}, pour lire qui authentifie les messages reçus "
        "(il n'est pas enregistré ; vide : passer) : ")
    if not password:
        return None
    try:
        return mailbox_authentication(dataclasses.replace(imap, password=Secret(password)))
    except ReclambotError as exc:
        print(f"  → boîte illisible ({exc}) : reclambot check le proposera")
        return None


def cmd_init(args: argparse.Namespace) -> int:
    from bot.config import default_config_path
    from bot.ops.init import write_config

    path, provider = write_config(args.config or default_config_path(), input, _init_probe)
    if provider.oauth2:
        print(f"{path} écrit ; connectez la boîte une fois : reclambot auth {provider.oauth2}, "
              "puis : reclambot check (docs/providers.md)")
    else:
        print(f"{path} écrit ; mettez les mots de passe dans les variables d'environnement "
              "qu'il nomme (RECLAMBOT_IMAP_PASSWORD, RECLAMBOT_SMTP_PASSWORD), "
              "puis : reclambot check")
    if provider.note:
        print(f"à savoir : {provider.name} : {provider.note} (docs/providers.md)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from bot.reporting.status import status_lines

    if getattr(args, "organisations", None) is not None and args.organisation is None:
        return _status_of_all(args)
    with _app(args, mailbox_secrets=False) as app:  # it reads the register, not the mail
        print("\n".join(status_lines(app)))
    return 0


def _status_of_all(args: argparse.Namespace) -> int:
    """``status --organisations DIR``: each organisation's status, one after the other."""
    from bot.reporting.status import status_lines

    return _each_organisation(args, status_lines)


def cmd_auth(args: argparse.Namespace) -> int:
    from bot.config import load_config
    from bot.config.oauth2 import sign_in
    from bot.errors import ConfigError

    config = load_config(args.config)
    if config.oauth2 is None:
        raise ConfigError("oauth2", "section manquante : indiquez provider, client_id et "
                                    "token_file (voir config.example.toml et docs/providers.md)")
    if config.oauth2.provider != args.provider:
        raise ConfigError("oauth2.provider", f"vaut {config.oauth2.provider!r}, "
                                             f"pas {args.provider!r}")
    username = next((s.username for s in (config.imap, config.smtp) if s and s.username), "")
    path = sign_in(config.oauth2, username, print)
    print(f"connecté{' en tant que ' + username if username else ''} ; jeton enregistré dans "
          f"{path} (lisible par vous seul) ; mettez auth = \"oauth2\" dans [imap] et [smtp], "
          "puis : reclambot check")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from bot.app import build_app
    from bot.config import load_config
    from bot.outbound.sinks import make_sink
    from bot.web.server import check_listen, serve

    # The web process never holds the mailbox password: it reads no mail.
    config = load_config(args.config, mailbox_secrets=False)
    check_listen(config.web.host, config.web.port)
    app = build_app(config)
    try:
        web = config.web
        print(f"formulaire : http://{web.listen}/reclamation"
              + (f" (public : {web.public_url}/reclamation)" if web.public_url else ""))
        serve(app, lambda: make_sink(config))
    finally:
        app.close()
    return 0


def cmd_form(args: argparse.Namespace) -> int:
    from bot.web.export import export_form

    with _app(args) as app:
        path = export_form(app, args.output)
    print(f"formulaire écrit dans {path} (il envoie à {app.config.web.public_url}/reclamation)")
    return 0


def cmd_upgrade(args: argparse.Namespace) -> int:
    from bot.config import load_config
    from bot.store.db import make_engine
    from bot.store.schema import ensure_schema

    config = load_config(args.config)
    engine = make_engine(config.database_url, config.database_schema)
    try:
        state = ensure_schema(engine, upgrade=True, schema=config.database_schema)
    finally:
        engine.dispose()
    if state.before is None:
        print(f"registre créé au schéma {state.after}")
    elif state.changed:
        print(f"registre migré du schéma {state.before} au schéma {state.after}")
    else:
        print(f"registre déjà au schéma {state.after} : rien à faire")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "export": cmd_export, "demo": cmd_demo, "outbox": cmd_outbox,
    "check": cmd_check, "report": cmd_report, "gdpr": cmd_gdpr, "status": cmd_status,
    "dossier": cmd_dossier,
    "import": cmd_import, "init": cmd_init, "upgrade": cmd_upgrade,
    "quarantine": cmd_quarantine,
    "auth": cmd_auth, "serve": cmd_serve, "form": cmd_form,
    **{name: _job(name) for name in ("remind", "followup", "purge", "daily")},
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``reclambot`` console script."""
    args = _parser().parse_args(argv)
    if getattr(args, "organisation", None) is not None:
        from bot.ops.fleet import organisation_config

        if args.organisations is None:
            print("reclambot : erreur : --organisation demande --organisations DIR "
                  "(ou $RECLAMBOT_ORGANISATIONS)", file=sys.stderr)
            return 2
        try:
            args.config = organisation_config(args.organisations, args.organisation)
        except ReclambotError as exc:
            print(f"reclambot : erreur : {exc}", file=sys.stderr)
            return 2
    quiet = args.command == "demo"  # the demo prints its own summary
    from bot.core.logs import configure

    configure("text", logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO)
    try:
        return COMMANDS[args.command](args)
    except ReclambotError as exc:
        print(f"reclambot : erreur : {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader stopped reading (``| head``): nothing is wrong, nothing more to say.
        # Python would complain again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except EOFError:
        print("reclambot : erreur : fin de la saisie (Ctrl-D ou réponses épuisées) : rien "
              "n'a été écrit", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"reclambot : erreur : {system_error(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:
        from sqlalchemy.exc import OperationalError

        if isinstance(exc, OperationalError):
            print(f"reclambot : erreur : {database_error(exc)}", file=sys.stderr)
            return 2
        raise


#: What the system's errors mean, in French (the rest keep the system's words).
_ERRNO_FR = {
    errno.ENOENT: "introuvable", errno.EACCES: "accès refusé", errno.EPERM: "accès refusé",
    errno.ENOSPC: "le disque est plein", errno.EROFS: "en lecture seule",
    errno.EADDRINUSE: "adresse déjà utilisée par un autre programme",
    errno.ENOTDIR: "n'est pas un dossier", errno.EISDIR: "est un dossier",
    errno.ECONNREFUSED: "connexion refusée",
}


def system_error(exc: OSError) -> str:
    """One French line for an error of the system: what, where, and the fix's hint."""
    what = _ERRNO_FR.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    where = exc.filename if exc.filename is not None else ""
    hint = " : libérez de la place puis relancez" if exc.errno == errno.ENOSPC else ""
    return f"{where} : {what}{hint}" if where else f"{what}{hint}"


def database_error(exc: Exception) -> str:
    """One French line for the register's database refusing to work."""
    text = str(getattr(exc, "orig", exc))
    if "disk is full" in text or "No space left" in text:
        return ("le disque du registre est plein : rien n'a été perdu (le lot en cours sera "
                "repris), libérez de la place puis relancez")
    if "unable to open" in text or "readonly" in text:
        return f"le registre ne peut pas être écrit ({text}) : vérifiez [database] url"
    return f"la base de données du registre a refusé : {text}"


if __name__ == "__main__":
    sys.exit(main())
