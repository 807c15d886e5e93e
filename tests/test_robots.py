"""Robot rules one by one, on bare messages: each matches what it is for, and none takes a
person's complaint that merely looks like a robot's mail for one."""

from __future__ import annotations

from email.message import EmailMessage
from types import SimpleNamespace

import pytest

from bot.config import package_data_dir
from bot.intake import classify
from bot.intake.classify import robots
from bot.intake.classify.chain import Context
from bot.intake.message import decode_header_value, parse_message
from bot.rulebook import load_rulebook

RULES = load_rulebook(package_data_dir("rules"))
APP = SimpleNamespace(rulebook=RULES)


def ctx() -> Context:
    """A context of one message: the robot rules read the rulebook only (no database,
    no server)."""
    return Context(None, APP)  # type: ignore[arg-type]


def bare(subject: str = "Réclamation", body: str = "Bonjour,\n\nMa réclamation.\n",
         sender: str = "jeanne@example.org", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "reclamations@example.fr"
    msg["Subject"] = subject
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def report(outer: str, parts: list[tuple[str, str]], subject: str = "Réclamation") -> bytes:
    """A multipart message whose parts have these (content type, body)."""
    lines = [f"From: gateway@example.net\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
             f"Content-Type: {outer}; boundary=\"XX\"\r\n\r\n"]
    for kind, body in parts:
        lines.append(f"--XX\r\nContent-Type: {kind}\r\n\r\n{body}\r\n")
    lines.append("--XX--\r\n")
    return "".join(lines).encode()


def matched(raw: bytes) -> set[str]:
    return {m.rule for m in classify.robot_matches(parse_message(raw), ctx())}


ORIGINAL = ("From: reclamations@example.fr\r\nTo: nobody@example.org\r\n"
            "Message-ID: <0123456789abcdef0123456789abcdef.reclambot@example.fr>\r\n"
            "Subject: Accusé de réception\r\n\r\nBonjour\r\n")


ONE_BY_ONE = [
    (bare(Auto_Submitted="auto-replied"), "auto_submitted"),
    (bare(sender="MAILER-DAEMON@mx.example.net"), "robot_sender"),
    (bare(sender="no-reply@plateforme.example.net"), "robot_sender"),
    (bare(Precedence="bulk"), "precedence"),
    (bare(List_Id="<formateurs.listes.example.net>"), "robot_headers"),
    (bare(X_Autoreply="yes"), "robot_headers"),
    (report("multipart/report; report-type=delivery-status",
            [("text/plain", "x"), ("message/delivery-status", "Status: 5.1.1")]),
     "delivery_report"),
    (bare(Return_Path="<>"), "return_path"),
    (bare(Return_Path="<MAILER-DAEMON@mx.example.net>"), "return_path"),
    (bare(Return_Path="<postmaster@example.net>"), "return_path"),
    (report("multipart/mixed", [("text/plain", "Failed."),
                                ("message/delivery-status", "Status: 5.1.1")]), "report_structure"),
    (report("multipart/mixed", [("text/plain", "x"), ("text/rfc822-headers", ORIGINAL)]),
     "report_structure"),
    (bare(body="This is the mail system at host mx.example.net.\n\nI'm sorry..."),
     "report_body_opening"),
    (bare(body="Hi. This is the qmail-send program at example.net.\n"), "report_body_opening"),
    (bare(body="Delivery has failed to these recipients or groups:\n\nx@example.org\n"),
     "report_body_opening"),
    (bare("RÉCLAMATION Returned Mail - Error During Delivery"), "delivery_failure_subject"),
    (bare("Mail could not be delivered - Réclamation"), "delivery_failure_subject"),
    (bare("Réclamation: Delivery failure notification"), "delivery_failure_subject"),
    (bare("Non remis : RÉCLAMATION attestation"), "delivery_failure_subject"),
    (bare("Unzustellbar: Reclamation"), "delivery_failure_subject"),
    (bare("No se puede entregar: Reclamación"), "delivery_failure_subject"),
    (bare("Non recapitabile: Reclamo"), "delivery_failure_subject"),
    (bare("Onbestelbaar: Reclamatie"), "delivery_failure_subject"),
    (bare("Não entregue: Reclamação"), "delivery_failure_subject"),
    (bare("Mail delivery failed: returning message to sender"), "delivery_failure_subject"),
    (bare("[VIRUS] Réclamation"), "content_filter_subject"),
    (bare("Your message to formation-l awaits moderator approval : non remis"),
     "list_moderation_subject"),
    (bare("Please confirm you are human - RÉCLAMATION"), "challenge_response_subject"),
    (bare("Réponse automatique : RÉCLAMATION"), "out_of_office"),
    (bare("RÉCLAMATION Out of Office AutoReply: suivi"), "out_of_office"),
    (bare("I am out of the office until 04/01 (Réclamation)"), "out_of_office_sentence"),
    (bare("BANNED contents (.exe) in mail FROM YOU - Réclamation"), "content_filter_subject"),
    (bare("Message status - undeliverable RÉCLAMATION"), "delivery_failure_subject"),
    (bare("[RÉCLAMATION] complaint about message from 203.0.113.9"), "feedback_loop_subject"),
    (bare("Client TOS Notification [Réclamation]"), "feedback_loop_subject"),
    (bare("Loop Alert: Duplicated Message-ID (reclamations ML)"), "list_server_notice_subject"),
    (bare("BOUNCE reclamations@listes.example.net:  Non-member submission from "
          "[Claire <c@example.net>]"), "list_server_notice_subject"),
    (bare("Re: RÉCLAMATION", body="Error: Invalid user address\n\nError message below:\n"
          "550 - Requested action not taken: no such user here\n"), "report_body_opening"),
    (bare(sender="post_master@vtext.example.com"), "robot_sender"),
    (bare(sender="owner-formateurs@listes.example.net"), "robot_sender"),
    (bare(sender="formateurs-request@listes.example.net"), "robot_sender"),
    (bare(X_MLServer="fml [fml 4.0.3 release (20011202/4.0.3)]"), "robot_headers"),
    (bare(Mailing_List="contact formateurs-help@listes.example.net; run by ezmlm"),
     "robot_headers"),
    (report("multipart/mixed", [("text/plain", "A message that you sent could not be delivered"
                                 " to one or more of its recipients. The following address(es)"
                                 " failed:\n\n  x@example.org\n"),
                                ("message/rfc822", ORIGINAL)]), "enclosed_failure"),
]


@pytest.mark.parametrize(("raw", "rule"), ONE_BY_ONE)
def test_each_robot_rule_matches_its_kind(raw: bytes, rule: str) -> None:
    assert rule in matched(raw)


def test_every_robot_rule_has_its_bare_message_above() -> None:
    """A rule added to the classifier or to rules/robots.toml needs its case here."""
    names = {rule.__name__ for rule in robots.ROBOT_RULES}
    names |= {rule.name for rule in RULES.robots.subject_rules}
    assert names - {rule for _raw, rule in ONE_BY_ONE} == set()


@pytest.mark.parametrize("raw", [
    bare("Réclamation : colis non remis"),
    bare("Réclamation", body="Bonjour,\n\nLa plateforme affiche :\nError: Invalid user "
         "address\n550 - Requested action not taken\n\nJeanne\n"),
    bare("Réclamation - Loop Alert: la plateforme me renvoie sans cesse au début"),
    bare("TR: RÉCLAMATION complaint about message from 203.0.113.9"),
    bare("Réclamation", sender="jean-owner@example.org"),
    bare("Réclamation : non remise de mon attestation"),
    bare("RÉCLAMATION - undeliverable promises"),
    bare("Réclamation", body="Bonjour,\n\nJ'ai reçu « Mail delivery failed: returning message "
         "to sender » en vous écrivant, et aucune réponse.\n\nJeanne\n"),
    bare("Réclamation", body="Bonjour,\n\nVoici le message d'erreur reçu :\n\n"
         "> This is the mail system at host mx.example.fr.\n"),
    report("multipart/mixed", [("text/plain", "Bonjour, je vous transfère le courriel."),
                               ("message/rfc822", ORIGINAL)], subject="TR: Réclamation"),
    report("multipart/mixed", [("text/plain", "Bonjour, l'erreur reçue est jointe."),
                               ("message/rfc822", "From: MAILER-DAEMON@x\r\nContent-Type: "
                                "multipart/report; boundary=\"Y\"\r\n\r\n--Y\r\nContent-Type:"
                                " message/delivery-status\r\n\r\nStatus: 5.0.0\r\n--Y--\r\n")]),
    bare("Réponse automatique reçue, aucune réponse à ma RÉCLAMATION"),
    bare("TR: Non remis : Inscription - RÉCLAMATION"),
    bare("Fwd: Undeliverable: Demande de devis RÉCLAMATION"),
    bare("Réclamation : virus sur l'ordinateur de la salle"),
    bare("Réclamation : dossier CPF en attente d'approbation"),
    bare("Réclamation : pièce jointe bloquée par votre messagerie"),
    bare("Réclamation : demande de vérification de mes heures"),
    bare("Réclamation : votre site me demande 'verify you are human' en boucle"),
])
def test_a_person_who_looks_like_a_robot_is_not_one(raw: bytes) -> None:
    assert matched(raw) == set()


@pytest.mark.parametrize(("subject", "expected"), [
    (b"=?utf-8?q?R=C3=89CLAMATION_?= =?gb2312?B?yv3X1g==?=", "RÉCLAMATION 数字"),
    (b"=?utf-8?q?R=C3=89CLAMATION_?= =?gb2312?B?/////w==?=", "RÉCLAMATION"),  # undecodable
    (b"=?utf-8?q?R=C3=89CLAMATION_?= =?x-unknown?B?yv3X1g==?= suite", "RÉCLAMATION"),
])
def test_one_bad_encoded_word_hides_no_other(subject: bytes, expected: str) -> None:
    assert decode_header_value(subject).startswith(expected)


@pytest.mark.parametrize("subject", ["RÉCLAMATIONS diverses", "RÉCLAMATION:attestation",
                                     "Re: TR: réclamation", "=?gb2312?B?yv3X1g==?= Réclamation"])
def test_the_tag_is_found_in_any_subject(subject: str) -> None:
    msg = parse_message(bare(subject))
    assert classify.subject_tag(msg, ctx()) is not None


def test_rule_subject_strips_tag_and_prefixes() -> None:
    tags = RULES.subject_tags
    assert robots.rule_subject("RE: [RÉCLAMATION] Undeliverable: x", tags) == "undeliverable: x"
    assert robots.rule_subject("Réclamation : colis non remis", tags) == "colis non remis"


@pytest.mark.parametrize(("subject", "is_forward"), [
    ("tr: non remis : x", True), ("fwd: undeliverable: x", True), ("wg: unzustellbar", True),
    ("non remis : x", False), ("transfert de dossier", False), ("fwd undeliverable", False),
])
def test_a_forwarded_subject_is_told_apart(subject: str, is_forward: bool) -> None:
    assert robots.forwarded(subject, RULES.robots.forward_prefixes) is is_forward


def test_a_report_forwarded_by_a_person_is_not_read_as_her_failure() -> None:
    """flufl.bounce reads the message without its enclosed messages: the report inside
    hers is what she received, not what she is."""
    inner = ("From: MAILER-DAEMON@mx.example.org\r\nSubject: failure notice\r\n\r\n"
             "Hi. This is the qmail-send program at mx.example.org.\r\n"
             "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
             "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
             "<accueil@example.fr>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n")
    raw = report("multipart/mixed", [("text/plain", "Bonjour, voici l'erreur reçue."),
                                     ("message/rfc822", inner)])
    assert robots.failures(raw)[1] == {"accueil@example.fr"}  # the detector alone sees it
    assert robots.failures(raw, leave_out=RULES.robots.enclosed_message_types) == (set(), set())
    assert "enclosed_failure" not in matched(raw)
