-- The order service's tables: its orders and their outbox (written in one transaction, relayed
-- to JetStream afterwards), and the audit service's record of every order event it consumed.
CREATE TABLE orders (
    order_id   text PRIMARY KEY,
    item       text NOT NULL,
    quantity   integer NOT NULL CHECK (quantity > 0),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE outbox (
    id       bigserial PRIMARY KEY,
    event_id text NOT NULL UNIQUE,
    subject  text NOT NULL,
    payload  jsonb NOT NULL,
    sent_at  timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

CREATE TABLE audit_events (
    event_id    text PRIMARY KEY,
    subject     text NOT NULL,
    payload     jsonb NOT NULL,
    stream_seq  bigint NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
