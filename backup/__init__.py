"""Backups of the service's state and their restore: `python -m scripts.backup` and the scheduled backup workflow.

A backup is a folder named by its UTC time holding one file per store (the order database; the
Temporal store, a SQLite file locally, PostgreSQL databases in production) and a manifest with
their sizes and SHA-256 sums, the versions that wrote them and the schema revision of the orders.
"""

# The Temporal schedule that takes backups, and the workflow it starts.
BACKUP_SCHEDULE_ID = "backup-periodic"
BACKUP_WORKFLOW = "BackupWorkflow"
BACKUP_WORKFLOW_ID = "backup"
