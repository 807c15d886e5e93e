"""Dossiers kept in the register (``[storage] dossiers = "database"``): the same files as
the folder store, reachable from every machine of a fleet, turned back into the folder an
auditor expects by ``reclambot dossier export REF DIR``, erased with the data they hold.

Run on SQLite and on PostgreSQL (the suite's two passes)."""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select

from bot.cli import main
from bot.errors import ReferenceRefused, StoreError
from bot.procedure import gdpr
from bot.store.dossier import DatabaseDossiers, Dossiers, export_dossier
from bot.store.models import Complaint, Contact, DossierFile
from bot.testing import samples
from tests.conftest import MemoryEnv
from tests.servers import Postgres

CLIENT = "jeanne.martin@example.org"


@pytest.fixture()
def pair(tmp_path: Path, database_url: str, postgres: Postgres | None,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[MemoryEnv, MemoryEnv]]:
    """The same organisation twice, each with its own register: dossiers in a folder, and
    dossiers in the database."""
    monkeypatch.setenv("RECLAMBOT_TEST_IMAP_PASSWORD", "never-used")
    (tmp_path / "folder").mkdir()
    (tmp_path / "database").mkdir()
    other_url = (postgres.database() if postgres is not None
                 else f"sqlite:///{tmp_path / 'database' / 'register.sqlite3'}")
    envs = (MemoryEnv(tmp_path / "folder", database_url),
            MemoryEnv(tmp_path / "database", other_url, dossiers="database"))
    yield envs
    for env in envs:
        env.close()


def scenario(env: MemoryEnv) -> str:
    """A free-text contact, answered with the form; the form sent back with an attachment
    and the contact's reference: a complaint that absorbs the contact's dossier."""
    env.deliver(samples.free_text(sender=f"Jeanne Martin <{CLIENT}>"))
    [contact] = env.query(Contact)
    env.deliver(samples.form_submission(
        {**samples.COMPLETE_FORM, "Adresse e-mail": CLIENT, "Référence": contact.reference},
        attachments=[("../../attestation demandée.pdf", "application/pdf",
                      samples.pdf_bytes())]))
    [complaint] = env.query(Complaint)
    return complaint.number


def shape(names: list[str]) -> list[str]:
    """Names without the moments, content hashes and row numbers that differ between two
    registers. Each part is replaced where it stands (a hash may be all digits, so one
    pattern for all three would sometimes take a hash for a row number)."""
    def one(name: str) -> str:
        name = re.sub(r"\d{8}-\d{6}", "#", name)  # the moment
        if name.startswith("envois/"):
            return re.sub(r"-\d+\.eml$", "#", name)  # the outbox row
        return re.sub(r"(?<=/)(#-)?[0-9a-f]{8}", lambda m: "#-#" if m.group(1) else "#", name)
    return sorted(one(name) for name in names)


def test_the_database_keeps_the_files_the_folder_keeps(pair: tuple[MemoryEnv, MemoryEnv],
                                                       tmp_path: Path) -> None:
    on_disk, in_database = pair
    folder_reference = scenario(on_disk)
    reference = scenario(in_database)
    assert isinstance(in_database.app.dossiers, DatabaseDossiers)
    assert not (tmp_path / "database" / "dossiers").exists()  # nothing on disk

    names = in_database.app.dossiers.names(reference)
    assert shape(names) == shape(on_disk.app.dossiers.names(folder_reference))
    assert any(n.startswith("envois/") for n in names)  # the acknowledgement's copy
    assert [n for n in names if n.startswith("pieces-jointes/")] != []
    # The contact's files were absorbed: none is left under its reference.
    [contact] = in_database.query(Contact)
    assert not in_database.app.dossiers.exists(contact.reference)
    assert in_database.app.dossiers.exists(reference)
    files = dict(in_database.app.dossiers.files(reference))
    [attachment] = [data for name, data in files.items() if name.startswith("pieces-jointes/")]
    assert attachment == samples.pdf_bytes()
    messages = [data for name, data in files.items() if name.startswith("messages/")]
    assert sorted(b"RECLAMATION" in m.upper() or b"formulaire" in m for m in messages) == [
        True, True]
    [complaint] = in_database.query(Complaint)
    assert "base de données du registre" in complaint.documents_location


def test_dossier_export_writes_the_folder_an_auditor_expects(
        pair: tuple[MemoryEnv, MemoryEnv], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    _, in_database = pair
    reference = scenario(in_database)
    out = tmp_path / "audit"
    code = main(["--config", str(in_database.config_path), "dossier", "export",
                 reference.lower(), str(out)])
    assert code == 0
    assert f"dossier {reference} écrit(s) dans {out / reference}" in capsys.readouterr().out
    written = sorted(p.relative_to(out / reference).as_posix()
                     for p in (out / reference).rglob("*") if p.is_file())
    assert written == in_database.app.dossiers.names(reference)
    for name, data in in_database.app.dossiers.files(reference):
        assert (out / reference / name).read_bytes() == data
    # The folder store gives the same folder back from its own files.
    again = export_dossier(Dossiers(out), reference, tmp_path / "again")
    assert [p.relative_to(tmp_path / "again" / reference).as_posix() for p in again] == written


def test_dossier_export_refuses_what_is_no_dossier(pair: tuple[MemoryEnv, MemoryEnv],
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _, in_database = pair
    config = str(in_database.config_path)
    assert main(["--config", config, "dossier", "export", "../../etc", str(tmp_path)]) == 2
    assert "n'est pas une référence de dossier" in capsys.readouterr().err
    assert main(["--config", config, "dossier", "export", "REC-2026-0999",
                 str(tmp_path / "out")]) == 2
    assert "aucun dossier REC-2026-0999" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_stored_path_that_leaves_the_dossier_is_never_written(
        pair: tuple[MemoryEnv, MemoryEnv], tmp_path: Path) -> None:
    """Names are made safe when written; an export checks them again, so that a row put
    there by hand (or by an older version) cannot write outside the folder."""
    _, in_database = pair
    with in_database.app.engine.begin() as conn:
        conn.execute(insert(DossierFile), [{
            "reference": "REC-2026-0042", "path": "../../escaped.txt", "data": b"x",
            "size": 1, "written_at": dt.datetime(2026, 12, 3)}])
    with pytest.raises(ReferenceRefused):
        export_dossier(in_database.app.dossiers, "REC-2026-0042", tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()
    assert not list(tmp_path.glob("**/escaped.txt"))


def test_gdpr_export_and_erase_cover_the_dossiers_in_the_database(
        pair: tuple[MemoryEnv, MemoryEnv], tmp_path: Path) -> None:
    _, in_database = pair
    reference = scenario(in_database)
    names = in_database.app.dossiers.names(reference)
    output = tmp_path / "rgpd.zip"
    gdpr.export(in_database.app, CLIENT, output)
    with zipfile.ZipFile(output) as archive:
        kept = {n for n in archive.namelist() if n.startswith("dossiers/")}
    assert kept == {f"dossiers/{reference}/{name}" for name in names}

    erased, _ = gdpr.erase(in_database.app, CLIENT)
    assert reference in erased
    with in_database.app.engine.connect() as conn:
        assert conn.scalar(select(func.count()).select_from(DossierFile)) == 0


def test_a_database_that_refuses_a_write_is_a_store_error() -> None:
    """The pipeline and the outbox catch it as a folder's failed write: the message stays
    to be done, the email after it is still sent."""
    broken = DatabaseDossiers(create_engine("sqlite://"))  # no dossier_files table
    with pytest.raises(StoreError, match="dossier REC-2026-0001 not written"):
        broken.store_sent("REC-2026-0001", dt.datetime(2026, 12, 3), "ack", 1, b"x")
    with pytest.raises(StoreError):
        broken.absorb("REC-2026-0001", ["CON-2026-0001"])
