-- Core provisioning and the attempt log. Times are RFC 3339 UTC text
-- (`2026-11-23T09:00:00.000Z`), which sorts and compares as time in both
-- backends and binds through sqlx's Any driver.
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE numbers (
    id          INTEGER PRIMARY KEY,
    e164        TEXT NOT NULL UNIQUE,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    language    TEXT NOT NULL DEFAULT 'en',
    created_at  TEXT NOT NULL
);

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    access_code TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (tenant_id, name),
    UNIQUE (tenant_id, access_code)
);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    number      TEXT NOT NULL,
    caller_id   TEXT NOT NULL,
    source      TEXT NOT NULL,
    stage       TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    room_id     INTEGER REFERENCES rooms(id),
    call_id     TEXT NOT NULL
);
CREATE INDEX attempts_at ON attempts (at);
