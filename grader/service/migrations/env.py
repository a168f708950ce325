"""Alembic's entry point for the service's migrations; `grader.service.db.migrate` hands it a connection."""

from alembic import context

from grader.service.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
context.run_migrations()
