-- Security codes, stored as keyed hashes (HMAC-SHA256, key outside the database).
ALTER TABLE rooms ADD COLUMN security_code_hash TEXT;
ALTER TABLE meetings ADD COLUMN security_code_hash TEXT;
ALTER TABLE tenants ADD COLUMN default_security_code_hash TEXT;
