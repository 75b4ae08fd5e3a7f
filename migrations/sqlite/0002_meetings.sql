-- Scheduled meetings with one-time codes, and the tenant settings that shape them.
ALTER TABLE tenants ADD COLUMN one_time_default BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN early_join_secs BIGINT NOT NULL DEFAULT 900;
ALTER TABLE tenants ADD COLUMN grace_secs BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tenants ADD COLUMN code_length BIGINT NOT NULL DEFAULT 9;

CREATE TABLE meetings (
    id            INTEGER PRIMARY KEY,
    room_id       INTEGER NOT NULL REFERENCES rooms(id),
    starts_at     TEXT NOT NULL,
    ends_at       TEXT NOT NULL,
    one_time_code TEXT,
    cancelled_at  TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX meetings_code ON meetings (one_time_code);
CREATE INDEX meetings_room ON meetings (room_id, ends_at);
