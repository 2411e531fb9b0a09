-- 0008_key_owners: who owns each API key: a staff member (stf_ and 16 hex digits), whose permissions cap the
-- key's on every request, or the installation (the keys custodia init and the CLI make, and
-- every key made before owners), which caps nothing: existing keys keep exactly the access
-- they had.
ALTER TABLE api_keys ADD COLUMN owner TEXT NOT NULL DEFAULT 'installation';
