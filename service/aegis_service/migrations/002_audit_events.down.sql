DROP TABLE audit_dead_letters;
DROP TABLE audit_events;
