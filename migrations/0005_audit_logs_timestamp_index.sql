-- no-transaction
-- An index on audit_logs(timestamp) alone, for what scans the log by time across users: the
-- retention sweep (spec.retention.auditDays: delete rows older than the cutoff) and auditors'
-- time-range reads. The existing (user_id, timestamp) index cannot serve a cutoff over all
-- users. Built CONCURRENTLY (outside a transaction, hence the first line) so that the
-- application role keeps inserting while it builds: an upgrade takes no lock that blocks it. An
-- interrupted build leaves an invalid index, which provisioning rebuilds (REINDEX CONCURRENTLY).
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_logs_timestamp_idx ON audit_logs (timestamp);
