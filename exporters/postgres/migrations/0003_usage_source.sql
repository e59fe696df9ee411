-- Where each row's token counts come from: the upstream's usage
-- ('reported'), the model server's /tokenize ('counted'), spendguard's
-- estimate ('estimated'), or no usage at all ('none': rejected, or ended
-- before the upstream answered). Rows written before this column existed
-- keep NULL there; their estimated column still says which were estimates.
-- Adding a nullable column rewrites no row.
ALTER TABLE spendguard_ledger
    ADD COLUMN usage_source text
    CONSTRAINT spendguard_ledger_usage_source
        CHECK (usage_source IN ('reported', 'counted', 'estimated', 'none'));
