"""The grading service (`grade serve`): submissions over HTTP, a database as the record, warm workers.

- db.py: the tables (SQLAlchemy 2), the engine (SQLite with WAL and a busy timeout, or PostgreSQL), migrations.
- store.py: everything the service does to the database: tokens, submissions, the job queue with leases,
  the webhook outbox. Each operation is one short transaction.
- worker.py: a grading process's background loops: claim jobs, grade them on the executor, heartbeat, store
  the report before acknowledging, requeue expired leases, deliver webhooks.
- runner.py: the grading runner processes `grade serve` starts (each runs worker.py's loops on its own
  executor), and the API process's side that starts, watches, restarts and stops them.
- app.py: the FastAPI application (the HTTP API of docs/http-api.md and the two pages).
- pages.py: the HTML of `/` and `/class` (no script, no external resource, everything escaped).
"""
