-- Room roles and behaviour: a host code (keyed in place of the access code,
-- unique and prefix-free within the tenant like every access code), whether
-- participants wait for the host or for admission, whether the room ends
-- when the last host leaves, and a member limit (NULL: none).
ALTER TABLE rooms ADD COLUMN host_code TEXT;
ALTER TABLE rooms ADD COLUMN wait_for_host BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN host_admits BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN end_with_host BIGINT NOT NULL DEFAULT 0;
ALTER TABLE rooms ADD COLUMN max_members BIGINT;
CREATE UNIQUE INDEX rooms_host_code ON rooms (tenant_id, host_code);
