-- Transactional outbox: an event row commits in the same transaction as the payment (or charge)
-- it describes; the KafkaPublisher delivers it and marks it published. `seq` orders events the
-- way they committed (one writer, multi-row inserts in commit order).
CREATE TABLE outbox_events (
    seq            BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
    event_id       CHAR(36)      NOT NULL,
    event_type     VARCHAR(64)   NOT NULL,
    schema_version INT           NOT NULL,
    buyer_id       BIGINT        NOT NULL,
    payload        MEDIUMTEXT    NOT NULL,
    occurred_at    DATETIME(6)   NOT NULL,
    status         VARCHAR(16)   NOT NULL DEFAULT 'PENDING',
    attempts       INT           NOT NULL DEFAULT 0,
    last_error     VARCHAR(1024) NULL,
    published_at   DATETIME(6)   NULL,
    UNIQUE KEY outbox_events_event_id (event_id),
    KEY outbox_events_status_seq (status, seq),
    KEY outbox_events_published_at (published_at),
    CONSTRAINT outbox_events_status CHECK (status IN ('PENDING', 'PUBLISHED', 'DEAD'))
) ENGINE = InnoDB;
