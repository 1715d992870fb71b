"""hepanav.therapy: liver-directed therapy decision support.

Decision tables (``data/rules/*.yaml``, one rule per criterion with its quoted source)
are evaluated for a :class:`~hepanav.therapy.schema.Case` by
:func:`~hepanav.therapy.engine.evaluate_case`; :func:`~hepanav.therapy.dose.check_dose`
checks doses against sourced regimens (and a historical table). See docs/therapy.md.
"""
