-- Whether spendguard ended a streamed response itself at a budget cap
-- (the client got a final error event; the charge is what was delivered).
-- Rows written before this column existed read false: spendguard did not
-- cut streams then. A constant default is stored in the catalog, so adding
-- the column rewrites no row.
ALTER TABLE spendguard_ledger
    ADD COLUMN cut boolean NOT NULL DEFAULT false;
