-- The domain table: who may do what on which NATS subjects.
CREATE TABLE access_grants (
    id              uuid        PRIMARY KEY,
    principal       text        NOT NULL CHECK (length(principal) BETWEEN 1 AND 200),
    subject_pattern text        NOT NULL CHECK (length(subject_pattern) BETWEEN 1 AND 255),
    permission      text        NOT NULL CHECK (permission IN ('publish', 'subscribe')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (principal, subject_pattern, permission)
);
