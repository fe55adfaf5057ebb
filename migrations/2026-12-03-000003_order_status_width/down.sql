-- Fails (strict mode) while an order is PARTIALLY_REFUNDED, before anything changed.
ALTER TABLE orders MODIFY status VARCHAR(16) NOT NULL;
