-- What the audit consumer stores: each event once (event_id is the idempotency key).
CREATE TABLE audit_events (
    seq         bigserial PRIMARY KEY,
    event_id    text        NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 128),
    event_type  text        NOT NULL,
    subject     text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    stored_at   timestamptz NOT NULL DEFAULT now(),
    body        jsonb       NOT NULL
);

CREATE INDEX audit_events_type_seq ON audit_events (event_type, seq);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

-- Messages the consumer could not store (bad JSON, no id, too large, ...): kept raw, with why.
CREATE TABLE audit_dead_letters (
    id          bigserial PRIMARY KEY,
    subject     text        NOT NULL,
    raw         bytea       NOT NULL,
    reason      text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
