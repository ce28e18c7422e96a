-- One row per event, whatever number of times JetStream delivered it (the primary key makes the
-- app's INSERT ... ON CONFLICT DO NOTHING idempotent).
CREATE TABLE events (
    event_id   text        PRIMARY KEY,
    kind       text        NOT NULL,
    data       jsonb       NOT NULL,
    subject    text        NOT NULL,
    stream_seq bigint      NOT NULL,
    stored_at  timestamptz NOT NULL DEFAULT now()
);
