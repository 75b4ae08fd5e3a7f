-- Which node owns each live room: the node whose caller opened the room
-- claims it, renews `expires_at` about every second while the room lives,
-- and lets it go (expires_at set to the release time) when the room
-- empties. Another node takes a room over only once its lease expired,
-- and then with `epoch + 1`: the epoch only grows, so a node that finds a
-- higher epoch than its own knows it has been replaced. `instance` is the
-- owner's process (as in `nodes`).
CREATE TABLE room_leases (
    room_id      BIGINT PRIMARY KEY,
    node_id      TEXT NOT NULL,
    instance     TEXT NOT NULL,
    sip_address  TEXT NOT NULL,
    epoch        BIGINT NOT NULL,
    claimed_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);
