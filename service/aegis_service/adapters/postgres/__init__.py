"""PostgreSQL adapters: the connection pool and schema status, access grants with their outbox events,
the outbox relay's side of the outbox, and the audit events table."""
