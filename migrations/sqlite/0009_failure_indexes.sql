-- Lockout counts read only failed attempts: partial indexes on the failed
-- outcomes make each count cost what the failures are, not the traffic.
-- The outcome list is store::attempt_log::FAILED_OUTCOMES.
CREATE INDEX attempts_failed_caller ON attempts (caller_id, at)
    WHERE outcome IN ('wrong', 'not_started', 'ended', 'revoked', 'used');
CREATE INDEX attempts_failed_source_ip ON attempts (source_ip, at)
    WHERE outcome IN ('wrong', 'not_started', 'ended', 'revoked', 'used');
CREATE INDEX attempts_failed_number ON attempts (number, at)
    WHERE outcome IN ('wrong', 'not_started', 'ended', 'revoked', 'used');
-- Every attempt was indexed three times for these counts; the failures'
-- indexes replace two (the operator's per-number view keeps attempts_number).
DROP INDEX attempts_caller;
DROP INDEX attempts_source_ip;
