# ruff: noqa: E501  (the reports' lines are as long as the MTAs write them)
"""Delivery-failure reports as six well-known MTAs write them, about a message of ours.

Each builder takes the original message (bytes, as the remote MX received it) and the
address that failed, and returns the report that MTA sends back to the envelope sender.
They follow the formats as documented or as widely quoted in bounce-parsing projects:
Microsoft Exchange (NDR, 2010 and later), Gmail, Sendmail (RFC 3464 DSN with its
transcript), qmail (QSBMF, plain text), Exim (plain text, the classic format) and
Lotus Domino (plain text with its "was not delivered to" sentence).
"""

from __future__ import annotations

import email
import email.policy
import uuid
from collections.abc import Callable

REMOTE = "example.net"
DATE = "Wed, 02 Dec 2026 10:15:00 +0100"


def _head(original: bytes) -> str:
    """The header block of ``original``, with LF line ends."""
    return original.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].decode("utf-8", "replace")


def _whole(original: bytes) -> str:
    return original.replace(b"\r\n", b"\n").decode("utf-8", "replace")


def _subject(original: bytes) -> str:
    return str(email.message_from_bytes(original, policy=email.policy.default)["Subject"])


def _envelope(sender: str, subject: str, to: str, extra: str = "") -> str:
    return (f"From: {sender}\nTo: {to}\nSubject: {subject}\nDate: {DATE}\n"
            f"Message-ID: <{uuid.uuid4().hex}@{REMOTE}>\nMIME-Version: 1.0\n{extra}")


def exchange(original: bytes, failed: str, to: str) -> str:
    """Exchange 2010+: an NDR from the MicrosoftExchange system mailbox, with text and
    HTML, a delivery-status part and the original attached."""
    boundary = f"_000_{uuid.uuid4().hex}_"
    alt = f"_001_{uuid.uuid4().hex}_"
    return _envelope(
        '"Microsoft Outlook" <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.net>',
        f"Undeliverable: {_subject(original)}", to,
        "Content-Type: multipart/report; report-type=delivery-status;\n"
        f'\tboundary="{boundary}"\nX-MS-Exchange-Message-Is-Ndr: \n'
        "X-MS-Exchange-Organization-SCL: -1\n") + f"""
--{boundary}
Content-Type: multipart/alternative; boundary="{alt}"

--{alt}
Content-Type: text/plain; charset="us-ascii"

Delivery has failed to these recipients or groups:

{failed}
The email address you entered couldn't be found. Please check the recipient's email address and try to resend the message. If the problem continues, please contact your helpdesk.

Diagnostic information for administrators:

Generating server: EXCH01.example.net

{failed}
Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'

--{alt}
Content-Type: text/html; charset="us-ascii"

<html><body><p><b><font color="#000066">Delivery has failed to these recipients or groups:</font></b></p>
<p><a href="mailto:{failed}">{failed}</a><br>The email address you entered couldn't be found.</p></body></html>

--{alt}--

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns;EXCH01.example.net
Received-From-MTA: dns;mx.example.fr
Arrival-Date: {DATE}

Final-Recipient: rfc822;{failed}
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup

--{boundary}
Content-Type: message/rfc822

{_whole(original)}
--{boundary}--
"""


def gmail(original: bytes, failed: str, to: str) -> str:
    """Gmail: "Delivery Status Notification (Failure)" from the Mail Delivery Subsystem,
    "** Address not found **", a DSN part and the original's headers."""
    boundary = uuid.uuid4().hex[:28]
    return _envelope(
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        "Delivery Status Notification (Failure)", to,
        f'Content-Type: multipart/report; boundary="{boundary}"; report-type=delivery-status\n'
        "X-Failed-Recipients: " + failed + "\n") + f"""
--{boundary}
Content-Type: multipart/related; boundary="{boundary}-r"

--{boundary}-r
Content-Type: text/plain; charset="UTF-8"


** Address not found **

Your message wasn't delivered to {failed} because the address couldn't be found, or is unable to receive mail.

Learn more here: https://support.google.com/mail/?p=NoSuchUser

The response was:

The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos or unnecessary spaces. Learn more at https://support.google.com/mail/?p=NoSuchUser

--{boundary}-r--

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; googlemail.com
Received-From-MTA: dns; mx.example.fr
Arrival-Date: {DATE}

Final-Recipient: rfc822; {failed}
Action: failed
Status: 5.1.1
Remote-MTA: dns; gmail-smtp-in.l.google.com. (2a00:1450:400c:c0b::1a, the server for the domain {REMOTE}.)
Diagnostic-Code: smtp; 550-5.1.1 The email account that you tried to reach does not exist.
Last-Attempt-Date: {DATE}

--{boundary}
Content-Type: text/rfc822-headers

{_head(original)}

--{boundary}--
"""


def sendmail(original: bytes, failed: str, to: str) -> str:
    """Sendmail 8: "Returned mail: see transcript for details", the transcript of the
    session, a DSN part and the whole original."""
    boundary = f"0B2AFG1O{uuid.uuid4().hex[:6]}.1764666900/mx.{REMOTE}"
    return _envelope(
        f"Mail Delivery Subsystem <MAILER-DAEMON@mx.{REMOTE}>",
        "Returned mail: see transcript for details", to,
        f'Content-Type: multipart/report; report-type=delivery-status;\n\tboundary="{boundary}"\n'
        "Auto-Submitted: auto-generated (failure)\n") + f"""
This is a MIME-encapsulated message

--{boundary}

The original message was received at {DATE}
from mx.example.fr [192.0.2.25]

   ----- The following addresses had permanent fatal errors -----
<{failed}>
    (reason: 550 5.1.1 <{failed}>... User unknown)

   ----- Transcript of session follows -----
... while talking to mail.{REMOTE}.:
>>> DATA
<<< 550 5.1.1 <{failed}>... User unknown
550 5.1.1 <{failed}>... User unknown
<<< 503 5.0.0 Need RCPT (recipient)

--{boundary}
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.{REMOTE}
Received-From-MTA: DNS; mx.example.fr
Arrival-Date: {DATE}

Final-Recipient: RFC822; {failed}
Action: failed
Status: 5.1.1
Remote-MTA: DNS; mail.{REMOTE}
Diagnostic-Code: SMTP; 550 5.1.1 <{failed}>... User unknown
Last-Attempt-Date: {DATE}

--{boundary}
Content-Type: message/rfc822

{_whole(original)}
--{boundary}--
"""


def qmail(original: bytes, failed: str, to: str) -> str:
    """qmail-send: "failure notice", plain text (QSBMF), the original below a line."""
    return _envelope(f"MAILER-DAEMON@mx.{REMOTE}", "failure notice", to) + f"""
Hi. This is the qmail-send program at mx.{REMOTE}.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<{failed}>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

{_whole(original)}"""


def exim(original: bytes, failed: str, to: str) -> str:
    """Exim 4: "Mail delivery failed: returning message to sender", plain text, with
    X-Failed-Recipients and the whole original after its marker line."""
    return _envelope(
        f"Mail Delivery System <Mailer-Daemon@mx.{REMOTE}>",
        "Mail delivery failed: returning message to sender", to,
        f"X-Failed-Recipients: {failed}\nAuto-Submitted: auto-replied\n"
        "Content-Type: text/plain; charset=us-ascii\n") + f"""
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  {failed}
    SMTP error from remote mail server after RCPT TO:<{failed}>:
    550 5.1.1 <{failed}>: Recipient address rejected: User unknown in virtual mailbox table

------ This is a copy of the message, including all the headers. ------

{_whole(original)}"""


def domino(original: bytes, failed: str, to: str) -> str:
    """Lotus Domino: "DELIVERY FAILURE: …", plain text, "was not delivered to", and the
    original attached."""
    boundary = f"=_mixed {uuid.uuid4().hex[:16]}_="
    return _envelope(
        f"Postmaster@{REMOTE}", f"DELIVERY FAILURE: User {failed.split('@')[0]} "
        f"({failed}) not listed in Domino Directory", to,
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n') + f"""
--{boundary}
Content-Type: text/plain; charset="US-ASCII"

Your message

  Subject: {_subject(original)}

was not delivered to:

  {failed}

because:

  User {failed.split('@')[0]} ({failed}) not listed in Domino Directory

--{boundary}
Content-Type: message/rfc822

{_whole(original)}
--{boundary}--
"""


#: Each MTA's builder, by name.
FORMATS: dict[str, Callable[[bytes, str, str], str]] = {
    "exchange": exchange, "gmail": gmail, "sendmail": sendmail, "qmail": qmail,
    "exim": exim, "domino": domino,
}


def as_bytes(report: str) -> bytes:
    """The report with CRLF line ends, as it travels on SMTP."""
    return report.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")

