-- 0005_customers_clustered: the customer tables stored as b-trees keyed as they are looked up
-- (WITHOUT ROWID): a customer is one descent by id instead of the id index and then the
-- table, and its sealed fields sit together after it. A read under audited load loads its
-- pages afresh after every group commit, so pages per read is what counts
-- (docs/performance.md). With foreign keys on, renaming a table rewrites the REFERENCES
-- clauses that name it, so the tables that refer to customers are rebuilt too, each referring
-- to the new table; then the old table goes. Dropped tables' pages are overwritten
-- (secure_delete is on for every connection).
ALTER TABLE customers RENAME TO customers_old;
DROP INDEX customers_kek;
CREATE TABLE customers (
    id           TEXT    NOT NULL PRIMARY KEY,
    status       TEXT    NOT NULL,
    country      TEXT,
    language     TEXT,
    tags         TEXT    NOT NULL,
    dek_wrapped  BLOB,
    dek_version  INTEGER NOT NULL,
    kek_version  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    erased_at    INTEGER,
    erased_by    TEXT
) STRICT, WITHOUT ROWID;
INSERT INTO customers (id, status, country, language, tags, dek_wrapped, dek_version,
                       kek_version, created_at, updated_at, erased_at, erased_by)
    SELECT id, status, country, language, tags, dek_wrapped, dek_version, kek_version,
           created_at, updated_at, erased_at, erased_by FROM customers_old;
CREATE INDEX customers_kek ON customers (kek_version);

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

CREATE TABLE customer_index_new (
    field        TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    customer_id  TEXT    NOT NULL REFERENCES customers (id),
    is_unique    INTEGER NOT NULL,
    PRIMARY KEY (field, hash, customer_id)
) STRICT, WITHOUT ROWID;
INSERT INTO customer_index_new (field, hash, customer_id, is_unique)
    SELECT field, hash, customer_id, is_unique FROM customer_index;
DROP TABLE customer_index;
ALTER TABLE customer_index_new RENAME TO customer_index;
CREATE UNIQUE INDEX customer_index_unique ON customer_index (field, hash) WHERE is_unique = 1;
CREATE INDEX customer_index_customer ON customer_index (customer_id, field);

CREATE TABLE customer_secrets_new (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
) STRICT, WITHOUT ROWID;
INSERT INTO customer_secrets_new (customer_id, name, value)
    SELECT customer_id, name, value FROM customer_secrets;
DROP TABLE customer_secrets;
ALTER TABLE customer_secrets_new RENAME TO customer_secrets;

DROP TABLE customers_old;
