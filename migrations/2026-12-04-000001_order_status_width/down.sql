-- Back to 16 characters. While an order is PARTIALLY_REFUNDED this fails in strict mode, before
-- anything has changed; the money lifecycle's own down migration refuses such orders anyway.
ALTER TABLE orders MODIFY status VARCHAR(16) NOT NULL;
