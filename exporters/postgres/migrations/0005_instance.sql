-- Which spendguard process served each row: its instance id (the name its
-- budget leases are held under in Redis). Rows written before this
-- column existed keep NULL. Adding a nullable column rewrites no row.
ALTER TABLE spendguard_ledger ADD COLUMN instance text;

-- Processes whose every row is known to be in the ledger although they
-- did not stop cleanly: another process shipped what they left in their
-- spool (drained_at). A dead process's lease forfeits in Redis are then
-- reconciled with its rows, once (reconciled_at).
CREATE TABLE spendguard_instances (
    instance      text        PRIMARY KEY,
    drained_at    timestamptz NOT NULL,
    reconciled_at timestamptz
);

-- A dead process's rows are summed by instance.
CREATE INDEX spendguard_ledger_instance ON spendguard_ledger (instance, start_time) WHERE instance IS NOT NULL;
