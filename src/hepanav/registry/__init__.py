"""hepanav.registry: the outcomes registry and the study statistics.

Patients (pseudonymous), primary tumours, lesions, procedures, lesion treatments
(margins), follow-up events and complications live in a SQL database (SQLite
file by default, PostgreSQL by URL) whose schema is managed by Alembic
migrations shipped inside this package. Statistics (:mod:`hepanav.registry.stats`)
treat tumours as clustered within patients and death as a competing risk.
"""
