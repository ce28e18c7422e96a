-- Transactional outbox: a domain change and its event are committed together; the relay
-- publishes pending rows (published_at IS NULL) to JetStream and marks them.
CREATE TABLE outbox_events (
    id           bigserial PRIMARY KEY,
    event_id     text        NOT NULL UNIQUE CHECK (length(event_id) BETWEEN 1 AND 128),
    subject      text        NOT NULL,
    body         bytea       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);

CREATE INDEX outbox_events_pending ON outbox_events (id) WHERE published_at IS NULL;

-- Wake the relay (LISTEN outbox_events) once per inserting statement.
CREATE FUNCTION outbox_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER outbox_events_notify
    AFTER INSERT ON outbox_events
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_events_notify();
