-- 0005_fields_clustered: a customer's sealed fields stored together, keyed by (customer_id,
-- field) in one b-tree (WITHOUT ROWID), so that reading a customer is one descent and a short
-- scan instead of an index walk plus a table lookup per field (docs/performance.md). No other
-- table refers to customer_fields; secure_delete (on for every connection) overwrites the
-- pages the old table frees.
CREATE TABLE customer_fields_new (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    field        TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, field)
) STRICT, WITHOUT ROWID;
INSERT INTO customer_fields_new (customer_id, field, value)
    SELECT customer_id, field, value FROM customer_fields;
DROP TABLE customer_fields;
ALTER TABLE customer_fields_new RENAME TO customer_fields;
