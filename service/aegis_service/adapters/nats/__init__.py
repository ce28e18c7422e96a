"""NATS adapters: the connection, KV (definitions store, instance registry), the health responder, and
JetStream publishing and pulling for the audit pipeline."""
