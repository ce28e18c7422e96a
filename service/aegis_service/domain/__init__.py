"""The pure core: frozen wire models, audit events and errors.

Nothing here imports infrastructure (only pydantic and the standard library), so every use case and
adapter can depend on it."""
