ALTER TABLE outbox_events
    DROP INDEX outbox_events_unpublished,
    ADD INDEX outbox_events_status_seq (status, seq),
    ADD INDEX outbox_events_published_at (published_at);
