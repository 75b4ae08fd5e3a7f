-- Invitees of a meeting, each with a personal single-use code stored only as
-- a keyed hash (HMAC-SHA256 under the server key).
CREATE TABLE invitees (
    id                INTEGER PRIMARY KEY,
    meeting_id        INTEGER NOT NULL REFERENCES meetings(id),
    name              TEXT NOT NULL,
    phone             TEXT,
    email             TEXT,
    code_hash         TEXT NOT NULL UNIQUE,
    used_by_caller_id TEXT,
    used_at           TEXT,
    revoked_at        TEXT,
    created_at        TEXT NOT NULL
);
CREATE INDEX invitees_meeting ON invitees (meeting_id);
