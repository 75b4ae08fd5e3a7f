-- Gateway nodes serving from this store: who they are, where they answer,
-- and a heartbeat a live node renews about every second. `instance` is
-- random per process: a restarted node takes its row over only once the
-- old process said `stopped` or its heartbeat went stale.
CREATE TABLE nodes (
    node_id       TEXT PRIMARY KEY,
    instance      TEXT NOT NULL,
    sip_address   TEXT NOT NULL,
    api_address   TEXT NOT NULL,
    state         TEXT NOT NULL,
    calls         INTEGER NOT NULL DEFAULT 0,
    started_at    TEXT NOT NULL,
    heartbeat_at  TEXT NOT NULL
);
