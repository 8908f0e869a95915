"""Business rules as pure functions over plain data.

Nothing here reads a database, calls a service, looks at the clock or the settings: an activity
reads what a rule needs, calls it and writes what it decides. So every rule is tested in
milliseconds, without PostgreSQL or Temporal (`make test-unit`).
"""
