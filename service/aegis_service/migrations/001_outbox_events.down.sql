DROP TABLE outbox_events;
DROP FUNCTION outbox_events_notify();
