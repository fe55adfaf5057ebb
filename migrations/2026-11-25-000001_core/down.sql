DROP TABLE id_blocks;
DROP TABLE idempotency_keys;
DROP TABLE payments;
DROP TABLE orders;
DROP TABLE ledger_entries;
DROP TABLE balances;
