-- 0003_vault: customers, their encrypted fields, and blind indexes (docs/internals/vault.md).
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
) STRICT;
CREATE INDEX customers_kek ON customers (kek_version);

-- One row per personal field: the value sealed under the customer's DEK, base64url.
CREATE TABLE customer_fields (
    customer_id  TEXT NOT NULL REFERENCES customers (id),
    field        TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, field)
) STRICT;

-- Blind indexes: keyed BLAKE2b of the normalised value; unique ones cannot repeat.
CREATE TABLE customer_index (
    field        TEXT    NOT NULL,
    hash         BLOB    NOT NULL,
    customer_id  TEXT    NOT NULL REFERENCES customers (id),
    is_unique    INTEGER NOT NULL,
    PRIMARY KEY (field, hash, customer_id)
) STRICT;
CREATE UNIQUE INDEX customer_index_unique ON customer_index (field, hash) WHERE is_unique = 1;
CREATE INDEX customer_index_customer ON customer_index (customer_id, field);
