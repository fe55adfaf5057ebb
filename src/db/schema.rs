// @generated automatically by Diesel CLI.

diesel::table! {
    balances (buyer_id) {
        buyer_id -> Bigint,
        balance -> Bigint,
        version -> Bigint,
        fence_token -> Bigint,
        updated_at -> Datetime,
    }
}

diesel::table! {
    cluster_engines (owner_token) {
        owner_token -> Bigint,
        #[max_length = 128]
        engine_id -> Varchar,
        #[max_length = 255]
        address -> Varchar,
        #[max_length = 16]
        state -> Varchar,
        started_at -> Datetime,
        heartbeat_at -> Datetime,
    }
}

diesel::table! {
    cluster_settings (name) {
        #[max_length = 64]
        name -> Varchar,
        value -> Bigint,
    }
}

diesel::table! {
    id_blocks (name) {
        #[max_length = 32]
        name -> Varchar,
        next_value -> Bigint,
    }
}

diesel::table! {
    idempotency_keys (idempotency_key) {
        #[max_length = 255]
        idempotency_key -> Varchar,
        buyer_id -> Bigint,
        #[max_length = 255]
        fingerprint -> Varchar,
        response_status -> Smallint,
        response_body -> Text,
        created_at -> Datetime,
        expires_at -> Datetime,
    }
}

diesel::table! {
    ledger_entries (buyer_id, version) {
        buyer_id -> Bigint,
        version -> Bigint,
        #[max_length = 16]
        kind -> Varchar,
        amount -> Bigint,
        balance_after -> Bigint,
        order_id -> Nullable<Bigint>,
        payment_id -> Nullable<Bigint>,
        refund_id -> Nullable<Bigint>,
        created_at -> Datetime,
    }
}

diesel::table! {
    orders (id) {
        id -> Bigint,
        buyer_id -> Bigint,
        total_price -> Bigint,
        #[max_length = 32]
        status -> Varchar,
        created_at -> Datetime,
        paid_at -> Nullable<Datetime>,
        cancelled_at -> Nullable<Datetime>,
    }
}

diesel::table! {
    outbox_events (seq) {
        seq -> Bigint,
        #[max_length = 36]
        event_id -> Char,
        #[max_length = 64]
        event_type -> Varchar,
        schema_version -> Integer,
        buyer_id -> Bigint,
        payload -> Mediumtext,
        occurred_at -> Datetime,
        #[max_length = 16]
        status -> Varchar,
        attempts -> Integer,
        #[max_length = 1024]
        last_error -> Nullable<Varchar>,
        published_at -> Nullable<Datetime>,
        entity_id -> Nullable<Bigint>,
    }
}

diesel::table! {
    outbox_pruned (event_type) {
        #[max_length = 64]
        event_type -> Varchar,
        occurred_through -> Datetime,
        seq_through -> Bigint,
        events -> Bigint,
        updated_at -> Datetime,
    }
}

diesel::table! {
    payments (id) {
        id -> Bigint,
        order_id -> Bigint,
        buyer_id -> Bigint,
        amount -> Bigint,
        refunded_amount -> Bigint,
        balance_after -> Bigint,
        ledger_version -> Bigint,
        paid_at -> Datetime,
    }
}

diesel::table! {
    refunds (id) {
        id -> Bigint,
        payment_id -> Bigint,
        order_id -> Bigint,
        buyer_id -> Bigint,
        amount -> Bigint,
        #[max_length = 255]
        reason -> Nullable<Varchar>,
        balance_after -> Bigint,
        ledger_version -> Bigint,
        refunded_at -> Datetime,
    }
}

diesel::table! {
    shard_leases (shard) {
        shard -> Integer,
        #[max_length = 128]
        owner_engine -> Nullable<Varchar>,
        owner_token -> Nullable<Bigint>,
        #[max_length = 255]
        address -> Nullable<Varchar>,
        epoch -> Bigint,
        expires_at -> Nullable<Datetime>,
        claimed_at -> Nullable<Datetime>,
        wanted_by -> Nullable<Bigint>,
        wanted_until -> Nullable<Datetime>,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    balances,
    cluster_engines,
    cluster_settings,
    id_blocks,
    idempotency_keys,
    ledger_entries,
    orders,
    outbox_events,
    outbox_pruned,
    payments,
    refunds,
    shard_leases,
);
