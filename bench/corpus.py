"""A realistic corpus of French complaint emails, generated from a fixed seed."""

from __future__ import annotations

import random

from bot.testing import samples

FIRST = ["Jeanne", "Paul", "Sophie", "Marc", "Lucie", "Hélène", "Julien", "Camille", "Éric",
         "Nathalie", "Thomas", "Chloé", "François", "Inès", "Mathieu", "Léa"]
LAST = ["Martin", "Bernard", "Dubois", "Leroy", "Moreau", "Lefèvre", "Garnier", "Faure",
        "Rousseau", "Blanc", "Guérin", "Muller", "Henry", "Roussel", "Perrin", "Chevalier"]
OBJECTS = ["Attestation de formation non reçue", "Facture en double", "Salle trop petite",
           "Annulation de session sans préavis", "Support de cours incomplet",
           "Retard du formateur", "Remboursement CPF en attente", "Convocation erronée",
           "Horaires modifiés sans information", "Évaluation finale non communiquée"]
ACTIONS = ["Sophrologie : gestion du stress", "Relaxation en entreprise",
           "Prévention des risques psychosociaux", "Communication bienveillante",
           "Sophrologie caycédienne niveau 1"]
SENTENCES = [
    "Je n'ai toujours pas reçu le document promis à la fin de la session.",
    "Malgré plusieurs relances par téléphone, personne ne m'a répondu.",
    "La salle n'était pas adaptée au nombre de participants inscrits.",
    "Le formateur est arrivé avec quarante minutes de retard le deuxième jour.",
    "La facture reçue ne correspond pas au devis signé en septembre.",
    "Je souhaite une réponse rapide car mon employeur attend ce justificatif.",
    "Les exercices pratiques annoncés dans le programme n'ont pas été réalisés.",
    "Je reste toutefois satisfaite du contenu de la formation dans son ensemble.",
]


def _description(rng: random.Random) -> str:
    return "\n".join(rng.sample(SENTENCES, rng.randint(2, 5)))


def message(rng: random.Random, index: int) -> tuple[str, bytes]:
    """One message of the corpus: (kind, raw bytes). Kinds: form, free, incomplete, untagged,
    robot; one in ten carries a 100 KB PDF, one in ten is multipart/alternative with HTML."""
    first, last = rng.choice(FIRST), rng.choice(LAST)
    address = f"{first.lower()}.{last.lower()}.{index}@example.org".replace("é", "e") \
        .replace("è", "e").replace("ç", "c").replace("É", "e").replace("ï", "i")
    kind = rng.choices(["form", "free", "incomplete", "untagged", "robot"],
                       weights=[50, 25, 10, 10, 5])[0]
    attachments = []
    if index % 10 == 3:
        attachments = [("justificatif.pdf", "application/pdf", samples.pdf_bytes(100_000))]
    as_html = index % 10 == 7
    headers = {"X-Bench-Id": str(index)}
    if kind in ("form", "incomplete"):
        fields = dict(samples.COMPLETE_FORM)
        fields.update({
            "Nom et prénom": f"{first} {last}",
            "Adresse e-mail": address,
            "Objet de la réclamation": rng.choice(OBJECTS),
            "Action(s) de formation concernée(s)": rng.choice(ACTIONS),
            "Description": _description(rng),
        })
        if kind == "incomplete":
            fields["Description"] = ""
            fields["Consentement RGPD"] = ""
        return kind, samples.form_submission(fields, as_html=as_html, attachments=attachments,
                                             headers=headers)
    body = f"Bonjour,\n\n{_description(rng)}\n\nCordialement,\n{first} {last}\n"
    subject = {"free": f"RÉCLAMATION : {rng.choice(OBJECTS)}",
               "untagged": "Question sur les prochaines sessions",
               "robot": "Réponse automatique : absent du bureau"}[kind]
    if kind == "robot":
        headers["Auto-Submitted"] = "auto-replied"
    html = f"<html><body><p>{body.replace(chr(10), '<br>')}</p></body></html>" if as_html else None
    raw = samples._message(sender=f"{first} {last} <{address}>", to="reclamations@example.fr",
                           subject=subject, text=body, html=html, headers=headers,
                           attachments=attachments)
    return kind, raw


def corpus(count: int, seed: int = 20261125) -> list[tuple[str, bytes]]:
    """``count`` messages, always the same for the same seed."""
    rng = random.Random(seed)
    return [message(rng, i) for i in range(count)]
