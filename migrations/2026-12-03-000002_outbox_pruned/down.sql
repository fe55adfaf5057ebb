ALTER TABLE outbox_events
    DROP INDEX outbox_events_entity,
    DROP COLUMN entity_id;

DROP TABLE outbox_pruned;
