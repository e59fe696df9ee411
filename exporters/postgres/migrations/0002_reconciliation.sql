-- One row per model and reconciliation window: the tokens vLLM counted
-- (vllm:prompt_tokens_total, vllm:generation_tokens_total) and the tokens
-- the ledger recorded for requests that ended in the window.
CREATE TABLE spendguard_reconciliation (
    upstream                    text        NOT NULL,
    model                       text        NOT NULL,
    window_start                timestamptz NOT NULL,
    window_end                  timestamptz NOT NULL,
    upstream_prompt_tokens      bigint      NOT NULL,
    upstream_generation_tokens  bigint      NOT NULL,
    recorded_prompt_tokens      bigint      NOT NULL,
    recorded_generation_tokens  bigint      NOT NULL,
    PRIMARY KEY (upstream, model, window_end)
);

CREATE INDEX spendguard_reconciliation_window_end ON spendguard_reconciliation (window_end);
