-- Lockouts count failed attempts from the attempt log in sliding windows,
-- per caller-ID, per source IP and per dialled number.
ALTER TABLE attempts ADD COLUMN source_ip TEXT NOT NULL DEFAULT '';
CREATE INDEX attempts_caller ON attempts (caller_id, at);
CREATE INDEX attempts_source_ip ON attempts (source_ip, at);
CREATE INDEX attempts_number ON attempts (number, at);
