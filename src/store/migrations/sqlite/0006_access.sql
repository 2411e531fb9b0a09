-- 0006_access: what the access policy reads of a staff member (the roles stored with them and
-- the attributes its conditions name) and the roles stored with an API key. Existing rows get
-- no role and no attribute, so each keeps exactly the permissions (scopes) it had.
ALTER TABLE staff ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE staff ADD COLUMN department TEXT;
ALTER TABLE staff ADD COLUMN region TEXT;
ALTER TABLE staff ADD COLUMN training_valid_until INTEGER;
ALTER TABLE api_keys ADD COLUMN roles TEXT NOT NULL DEFAULT '';
