-- Core money tables. Amounts are integer points (BIGINT); times are UTC with microseconds.

-- One row per buyer that has ever been charged. `version` counts the buyer's ledger entries and
-- `fence_token` names the engine incarnation that wrote the row last: a write commits only if the
-- row still carries the version and token its author last saw (see ARCHITECTURE.md, Fencing).
CREATE TABLE balances (
    buyer_id    BIGINT      NOT NULL PRIMARY KEY,
    balance     BIGINT      NOT NULL,
    version     BIGINT      NOT NULL,
    fence_token BIGINT      NOT NULL,
    updated_at  DATETIME(6) NOT NULL,
    CONSTRAINT balances_balance_not_negative CHECK (balance >= 0),
    CONSTRAINT balances_version_positive CHECK (version > 0)
) ENGINE = InnoDB;

-- The history: one entry per money movement, versions 1..n per buyer without gaps.
CREATE TABLE ledger_entries (
    buyer_id      BIGINT      NOT NULL,
    version       BIGINT      NOT NULL,
    kind          VARCHAR(16) NOT NULL,
    amount        BIGINT      NOT NULL,
    balance_after BIGINT      NOT NULL,
    order_id      BIGINT      NULL,
    payment_id    BIGINT      NULL,
    created_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (buyer_id, version),
    CONSTRAINT ledger_kind CHECK (kind IN ('CHARGE', 'PAYMENT')),
    CONSTRAINT ledger_balance_after_not_negative CHECK (balance_after >= 0)
) ENGINE = InnoDB;

CREATE TABLE orders (
    id          BIGINT      NOT NULL PRIMARY KEY,
    buyer_id    BIGINT      NOT NULL,
    total_price BIGINT      NOT NULL,
    status      VARCHAR(16) NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    paid_at     DATETIME(6) NULL,
    KEY orders_buyer (buyer_id, id),
    CONSTRAINT orders_total_positive CHECK (total_price > 0),
    CONSTRAINT orders_status CHECK (status IN ('PENDING', 'PAID'))
) ENGINE = InnoDB;

-- At most one payment per order, enforced by the database as well as by the buyer's actor.
CREATE TABLE payments (
    id             BIGINT      NOT NULL PRIMARY KEY,
    order_id       BIGINT      NOT NULL,
    buyer_id       BIGINT      NOT NULL,
    amount         BIGINT      NOT NULL,
    balance_after  BIGINT      NOT NULL,
    ledger_version BIGINT      NOT NULL,
    paid_at        DATETIME(6) NOT NULL,
    UNIQUE KEY payments_order (order_id),
    KEY payments_buyer (buyer_id)
) ENGINE = InnoDB;

-- Idempotency-Key records, committed in the same transaction as the money movement they answer.
CREATE TABLE idempotency_keys (
    idempotency_key VARCHAR(255)  NOT NULL PRIMARY KEY,
    buyer_id        BIGINT        NOT NULL,
    fingerprint     VARCHAR(255)  NOT NULL,
    response_status SMALLINT      NOT NULL,
    response_body   TEXT          NOT NULL,
    created_at      DATETIME(6)   NOT NULL,
    expires_at      DATETIME(6)   NOT NULL,
    KEY idempotency_keys_expiry (expires_at)
) ENGINE = InnoDB;

-- Hi/lo id allocation: an engine reserves a block of ids with one UPDATE and hands them out from
-- memory, so ids can be generated in Rust for batched inserts (MySQL has no RETURNING).
CREATE TABLE id_blocks (
    name       VARCHAR(32) NOT NULL PRIMARY KEY,
    next_value BIGINT      NOT NULL
) ENGINE = InnoDB;

INSERT INTO id_blocks (name, next_value) VALUES ('orders', 1), ('payments', 1);
