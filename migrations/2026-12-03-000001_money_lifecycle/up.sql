-- The rest of an order's life: cancelled before payment, refunded (in part or in full) after.
-- Nothing is deleted or rewritten: a refund is a new ledger entry (+amount) and a refunds row,
-- as a correcting transfer is in double-entry books.

ALTER TABLE orders
    DROP CONSTRAINT orders_status,
    MODIFY status VARCHAR(32) NOT NULL,
    ADD COLUMN cancelled_at DATETIME(6) NULL AFTER paid_at,
    ADD CONSTRAINT orders_status
        CHECK (status IN ('PENDING', 'PAID', 'CANCELLED', 'PARTIALLY_REFUNDED', 'REFUNDED')),
    -- A buyer's orders by status, newest first (GET /buyers/{id}/orders?status=).
    ADD INDEX orders_buyer_status (buyer_id, status, id);

-- How much of a payment has been refunded so far. A refund commits only if it keeps this at
-- most the payment's amount (a conditional UPDATE in the refund's transaction), so racing
-- refunds can never pass the amount, whichever engine or actor decided them.
ALTER TABLE payments
    ADD COLUMN refunded_amount BIGINT NOT NULL DEFAULT 0 AFTER amount,
    ADD CONSTRAINT payments_refunded_within_amount
        CHECK (refunded_amount >= 0 AND refunded_amount <= amount);

ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_kind,
    ADD COLUMN refund_id BIGINT NULL AFTER payment_id,
    ADD CONSTRAINT ledger_kind CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND'));

-- One row per refund: part or all of a payment, back to the buyer's points.
CREATE TABLE refunds (
    id             BIGINT       NOT NULL PRIMARY KEY,
    payment_id     BIGINT       NOT NULL,
    order_id       BIGINT       NOT NULL,
    buyer_id       BIGINT       NOT NULL,
    amount         BIGINT       NOT NULL,
    reason         VARCHAR(255) NULL,
    balance_after  BIGINT       NOT NULL,
    ledger_version BIGINT       NOT NULL,
    refunded_at    DATETIME(6)  NOT NULL,
    KEY refunds_payment (payment_id, id),
    KEY refunds_buyer (buyer_id, id),
    CONSTRAINT refunds_amount_positive CHECK (amount > 0)
) ENGINE = InnoDB;

INSERT INTO id_blocks (name, next_value) VALUES ('refunds', 1);
