-- 'PARTIALLY_REFUNDED' is 18 characters: the VARCHAR(16) of 2026-11-25-000001 refused it in
-- strict mode ("Data too long for column 'status'") although the CHECK of
-- 2026-12-03-000001 allows it.
ALTER TABLE orders MODIFY status VARCHAR(32) NOT NULL;
