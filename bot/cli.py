"""The ``reclambot`` command. Imports are lazy: ``reclambot --help`` loads almost nothing."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

log = logging.getLogger("bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reclambot",
        description="Runs the complaint (réclamation) procedure of a training organisation "
        "by email.",
    )
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default: $RECLAMBOT_CONFIG or ./config.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="watch the mailbox and handle complaints")
    run.add_argument("--once", action="store_true",
                     help="process everything waiting, send what is due, and exit")

    export = commands.add_parser("export", help="write the register")
    export.add_argument("--format", choices=["csv"], required=True)
    export.add_argument("--output", type=Path, default=None, help="file (default: stdout)")

    demo = commands.add_parser("demo", help="run the bot on a local sample mailbox, no server")
    demo.add_argument("--dir", type=Path, default=Path("reclambot-demo"),
                      help="working folder (default: ./reclambot-demo)")

    commands.add_parser("outbox", help="list the emails waiting to be sent or that failed")
    commands.add_parser("check", help="check the configuration, servers, database and templates")
    return parser


def _app(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from bot.app import build_app
    from bot.config import load_config

    return build_app(load_config(args.config))


def cmd_run(args: argparse.Namespace) -> int:
    from bot.runner import run_forever, run_once

    app = _app(args)
    try:
        if args.once:
            summary = run_once(app)
            actions = ", ".join(f"{k}: {v}" for k, v in sorted(summary.actions.items()))
            print(f"handled {summary.fetched} message(s){' (' + actions + ')' if actions else ''}; "
                  f"sent {summary.sent.sent}, deferred {summary.sent.deferred}, "
                  f"refused {summary.sent.refused}")
        else:
            run_forever(app)
    finally:
        app.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from bot.export import write_csv

    app = _app(args)
    try:
        with app.sessions() as session:
            if args.output is None:
                write_csv(session, sys.stdout)
            else:
                with args.output.open("w", encoding="utf-8-sig", newline="") as out:
                    count = write_csv(session, out)
                print(f"{count} complaint(s) written to {args.output}", file=sys.stderr)
    finally:
        app.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bot.demo import run_demo

    print(run_demo(args.dir))
    return 0


def cmd_outbox(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from bot.models import Outbox

    app = _app(args)
    try:
        with app.sessions() as session:
            rows = session.scalars(
                select(Outbox).where(Outbox.status != "sent").order_by(Outbox.id)
            ).all()
            for row in rows:
                print(f"{row.id:6} {row.status:8} attempts={row.attempts} "
                      f"next={row.next_attempt_at:%Y-%m-%d %H:%M} {row.kind}: "
                      f"{row.last_error[:80]}")
            print(f"{len(rows)} email(s) not sent")
    finally:
        app.close()
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from bot.check import config_result, run_checks

    config, first = config_result(args.config)
    results = [first, *(run_checks(config) if config is not None else [])]
    for result in results:
        print(result.line())
    return 0 if all(r.ok for r in results) else 1


COMMANDS = {"run": cmd_run, "export": cmd_export, "demo": cmd_demo, "outbox": cmd_outbox,
            "check": cmd_check}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``reclambot`` console script."""
    args = _parser().parse_args(argv)
    quiet = args.command == "demo"  # the demo prints its own summary
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # mail-parser warns about every part type it does not render (delivery reports...).
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    from bot.errors import ReclambotError

    try:
        return COMMANDS[args.command](args)
    except ReclambotError as exc:
        print(f"reclambot: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
