"""The web: the official form at ``/reclamation`` and the complainant's follow-up page at
``/suivi/<token>``, served by ``reclambot serve``.

Both are generated from ``rules/`` (the form version in force, its fields and checks) so
that the form people fill in is always the one the register checks against. A conforming
submission enters the register through the pipeline, exactly as an emailed form does.
"""
