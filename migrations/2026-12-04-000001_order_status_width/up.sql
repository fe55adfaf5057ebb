-- 'PARTIALLY_REFUNDED' has 18 characters and orders.status was created VARCHAR(16): in strict
-- mode every statement that would set it fails ("Data too long for column 'status'"). The
-- CHECK constraint and the (buyer_id, status, id) index stay as they are.
ALTER TABLE orders MODIFY status VARCHAR(24) NOT NULL;
