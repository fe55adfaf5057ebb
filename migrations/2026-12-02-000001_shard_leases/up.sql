-- Several engines on one database: each buyer belongs to one shard (buyer_id mod the shard
-- count), and each shard to at most one engine at a time, by a lease. Every time is the
-- database's clock (NOW(6)): engines never compare their own clocks.

-- Settings fixed for the life of the database: `shards` is written by the first engine that
-- starts and must never change (a buyer's shard would change with it).
CREATE TABLE cluster_settings (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT      NOT NULL
) ENGINE = InnoDB;

-- One row per shard, created by the first engine. A lease is held by `owner_token` (drawn at
-- random by each engine at start) until `expires_at`; every claim raises `epoch`, and a
-- group-commit batch commits only while its engine still holds each of its shards at the epoch
-- it claimed (a shared-lock read inside the batch's transaction), so a takeover waits for an
-- in-flight batch and a batch of an engine that lost the lease writes nothing.
-- `wanted_by` asks the owner to hand the shard back (to the engine the router sends it to);
-- until `wanted_until` only that engine may claim it once released.
CREATE TABLE shard_leases (
    shard        INT          NOT NULL PRIMARY KEY,
    owner_engine VARCHAR(128) NULL,
    owner_token  BIGINT       NULL,
    address      VARCHAR(255) NULL,
    epoch        BIGINT       NOT NULL DEFAULT 0,
    expires_at   DATETIME(6)  NULL,
    claimed_at   DATETIME(6)  NULL,
    wanted_by    BIGINT       NULL,
    wanted_until DATETIME(6)  NULL,
    KEY shard_leases_owner (owner_token)
) ENGINE = InnoDB;

-- The engines sharing the database, as each last reported itself (renew rounds): an engine
-- draining gets no shards handed back to others while it drains.
CREATE TABLE cluster_engines (
    owner_token  BIGINT       NOT NULL PRIMARY KEY,
    engine_id    VARCHAR(128) NOT NULL,
    address      VARCHAR(255) NOT NULL,
    state        VARCHAR(16)  NOT NULL,
    started_at   DATETIME(6)  NOT NULL,
    heartbeat_at DATETIME(6)  NOT NULL,
    CONSTRAINT cluster_engines_state CHECK (state IN ('SERVING', 'DRAINING'))
) ENGINE = InnoDB;
