"""The form: tolerant parsing of both body formats, and conformity checks."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot.config import package_data_dir
from bot.rulebook import load_rulebook
from bot.rulebook.form import extract_fields, validate
from bot.testing import samples

RULES = load_rulebook(package_data_dir("rules"))
DAY = dt.date(2026, 11, 25)


def test_plain_text_with_multiline_values() -> None:
    fields = extract_fields(samples.form_text(samples.COMPLETE_FORM), "", RULES)
    assert fields["client_name"] == "Jeanne Martin"
    assert fields["description"].count("\n") == 2
    assert fields["training_actions"].startswith("Sophrologie : gestion du stress")
    assert fields["gdpr_consent"] == "Oui"


def test_html_table_equals_plain_text() -> None:
    from_text = extract_fields(samples.form_text(samples.COMPLETE_FORM), "", RULES)
    from_html = extract_fields("", samples.form_html(samples.COMPLETE_FORM), RULES)
    assert from_html == from_text


@pytest.mark.parametrize(
    "label",
    ["Objet de la réclamation", "OBJET DE LA RECLAMATION", "objet  de la   réclamation *",
     "Objet de la Réclamation:", "Objet"],
)
def test_label_matching_is_tolerant(label: str) -> None:
    line = f"{label} Retard" if label.endswith(":") else f"{label} : Retard"
    fields = extract_fields(line + "\n", "", RULES)
    assert fields == {"object": "Retard"}


def test_colon_inside_a_value_does_not_start_a_field() -> None:
    text = "Description : Première ligne\nNote : ceci reste dans la description\n"
    assert extract_fields(text, "", RULES) == {
        "description": "Première ligne\nNote : ceci reste dans la description"
    }


def test_conforming_submission_is_normalised() -> None:
    values = extract_fields(samples.form_text(samples.COMPLETE_FORM), "", RULES)
    result = validate(values, RULES, DAY)
    assert result.conforming
    assert result.values["category"] == "stagiaire"
    assert result.values["acting_as"] == "particulier"
    assert result.values["facts_date"] == "2026-09-30"
    assert result.values["email"] == "jeanne.martin@example.org"


def test_every_problem_is_named() -> None:
    values = {"form_version": "2026-01", "email": "x@", "gdpr_consent": "non",
              "category": "touriste"}
    result = validate(values, RULES, DAY)
    named = {p.key: p.message for p in result.problems}
    assert set(named) == {"client_name", "email", "category", "object", "product",
                          "training_actions", "description", "gdpr_consent"}
    assert named["client_name"] == "information manquante"
    assert "n'est pas valide" in named["email"]
    assert "Oui" in named["gdpr_consent"]
    labels = {p.field for p in result.problems}
    assert "Action(s) de formation concernée(s)" in labels


def test_missing_and_unknown_version() -> None:
    assert validate({}, RULES, DAY).problems[0].key == "form_version"
    unknown = validate({"form_version": "1999"}, RULES, DAY)
    assert "inconnue" in unknown.problems[0].message and "2026-01" in unknown.problems[0].message


def test_version_not_yet_in_force() -> None:
    values = extract_fields(samples.form_text(samples.COMPLETE_FORM), "", RULES)
    result = validate(values, RULES, dt.date(2026, 11, 25))
    assert result.conforming
    with pytest.raises(Exception, match="no form version is in force"):
        validate(values, RULES, dt.date(2025, 6, 1))


def test_rules_files_are_data(tmp_path: Path) -> None:
    """A new required field is a change of rules/forms.toml only."""
    source = package_data_dir("rules")
    for name in ("procedure.toml", "robots.toml", "categories.toml"):
        (tmp_path / name).write_text((source / name).read_text())
    forms = (source / "forms.toml").read_text() + (
        '\n  [[versions.fields]]\n  key = "siret"\n  label = "Numéro SIRET"\n  required = true\n'
    )
    (tmp_path / "forms.toml").write_text(forms)
    rules = load_rulebook(tmp_path)
    values = extract_fields(samples.form_text(samples.COMPLETE_FORM), "", rules)
    assert [p.field for p in validate(values, rules, DAY).problems] == ["Numéro SIRET"]
