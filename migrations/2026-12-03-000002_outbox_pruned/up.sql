-- What `payment-engine audit` needs to tell a pruned event from a lost one, and to find the
-- event of a payment, refund, cancelled order or charge without reading payloads.

-- The pruner deletes published events after OUTBOX_RETENTION_S. In the transaction that deletes
-- them it raises, per event type, `occurred_through` to the latest `occurred_at` it deleted (and
-- `seq_through` to the highest seq). So in any snapshot, every event missing from the outbox
-- occurred at or before its type's `occurred_through`: an entity newer than that must still have
-- its event, and one that does not has lost it.
CREATE TABLE outbox_pruned (
    event_type       VARCHAR(64) NOT NULL PRIMARY KEY,
    occurred_through DATETIME(6) NOT NULL,
    seq_through      BIGINT      NOT NULL,
    events           BIGINT      NOT NULL,
    updated_at       DATETIME(6) NOT NULL
) ENGINE = InnoDB;

-- The id of what an event describes, taken from its payload by the database itself (so it can
-- never disagree with the payload, and the engine's inserts are unchanged): the payment, the
-- refund, the cancelled order, or for a charge the buyer's ledger version. Indexed with the
-- buyer, so the audit matches one range of buyers' rows to their events index-only.
ALTER TABLE outbox_events
    -- A payload that is not JSON, or whose id is not an integer of at most 18 digits, gives
    -- NULL (the audit reports such an event), never a failed insert.
    ADD COLUMN entity_id BIGINT GENERATED ALWAYS AS (IF(JSON_VALID(payload),
        IF(JSON_UNQUOTE(JSON_EXTRACT(payload, CASE event_type
                WHEN 'payment.completed' THEN '$.data.paymentId'
                WHEN 'payment.refunded' THEN '$.data.refundId'
                WHEN 'order.cancelled' THEN '$.data.orderId'
                WHEN 'points.charged' THEN '$.data.version'
            END)) REGEXP '^-?[0-9]{1,18}$',
           CAST(JSON_UNQUOTE(JSON_EXTRACT(payload, CASE event_type
                WHEN 'payment.completed' THEN '$.data.paymentId'
                WHEN 'payment.refunded' THEN '$.data.refundId'
                WHEN 'order.cancelled' THEN '$.data.orderId'
                WHEN 'points.charged' THEN '$.data.version'
            END)) AS SIGNED), NULL),
        NULL)) STORED,
    ADD INDEX outbox_events_entity (event_type, buyer_id, entity_id);
