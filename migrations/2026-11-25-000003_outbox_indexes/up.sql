-- One index serves both the relay (unpublished rows in commit order: published_at IS NULL sorts
-- first) and pruning (published_at < cutoff); marking rows published maintains one index
-- instead of two.
ALTER TABLE outbox_events
    DROP INDEX outbox_events_status_seq,
    DROP INDEX outbox_events_published_at,
    ADD INDEX outbox_events_unpublished (published_at, seq);
