"""Adapters of the service's ports, grouped by technology: ``nats/``, ``postgres/``, ``http/`` and the
in-memory ``memory`` store."""
