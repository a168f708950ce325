"""The grading service (`grade serve`): submissions over HTTP, a database as the record, warm workers.

- db.py: the tables (SQLAlchemy 2), the engine (SQLite with WAL and a busy timeout, or PostgreSQL), migrations.
- store.py: everything the service does to the database: tokens, submissions, the job queue with leases,
  the webhook outbox. Each operation is one short transaction.
- dispatcher.py: a grading process's background loops: claim jobs, grade them on the executor, heartbeat, store
  the report before acknowledging, requeue expired leases, deliver webhooks.
- runners.py: the grading runner processes `grade serve` starts (each runs the dispatcher's loops on its own
  executor), and the API process's side that starts, watches, restarts and stops them.
- config.py: the configuration, opening the store, the token administration `grade token` calls.
- core.py: `Service`, what the routes need (the store, the graders) and the operations they share.
- deps.py: what a route asks FastAPI for: the service and the caller its bearer token names.
- routes/: the HTTP API of docs/http-api.md, one APIRouter a resource (submissions, reports, health).
- app.py: assembles the FastAPI application (lifespan, body limit, error handlers, the routers).
- pages.py: the HTML of `/` and `/class` (no script, no external resource, everything escaped); lti/: LTI 1.3.
"""
