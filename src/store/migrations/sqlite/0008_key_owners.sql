-- 0008_key_owners: who owns each API key, and where it may be used from. The owner: a staff member (stf_ and 16 hex digits), whose permissions cap the
-- key's on every request, or the installation (the keys custodia init and the CLI make, and
-- every key made before owners), which caps nothing: existing keys keep exactly the access
-- they had.
ALTER TABLE api_keys ADD COLUMN owner TEXT NOT NULL DEFAULT 'installation';
-- The addresses a key may be used from: CIDR blocks, one space between; '' (every key made
-- before allow-lists): from anywhere.
ALTER TABLE api_keys ADD COLUMN networks TEXT NOT NULL DEFAULT '';
