-- One row per request on a cost path: spendguard's CostReport.
CREATE TABLE spendguard_ledger (
    request_id                  text        NOT NULL,
    start_time                  timestamptz NOT NULL,
    end_time                    timestamptz NOT NULL,
    endpoint                    text        NOT NULL,
    scope                       jsonb       NOT NULL,
    requested_model             text        NOT NULL,
    served_model                text        NOT NULL,
    response_model              text        NOT NULL,
    prompt_tokens               bigint      NOT NULL,
    cached_prompt_tokens        bigint      NOT NULL,
    completion_tokens           bigint      NOT NULL,
    reasoning_tokens            bigint      NOT NULL,
    cost_nano_usd               bigint      NOT NULL,
    input_cost_nano_usd         bigint      NOT NULL,
    output_cost_nano_usd        bigint      NOT NULL,
    estimated                   boolean     NOT NULL,
    decision                    text        NOT NULL,
    reject_reason               text        NOT NULL,
    budget                      text        NOT NULL,
    upstream_status             integer     NOT NULL,
    stream                      boolean     NOT NULL,
    aborted                     boolean     NOT NULL,
    duration_seconds            double precision NOT NULL,
    upstream_ttfb_seconds       double precision,
    processor_seconds           double precision NOT NULL,
    recorded_at                 timestamptz NOT NULL DEFAULT now(),
    -- x-request-id comes from clients and may repeat; a request is its id
    -- plus when it started and ended (to the microsecond). A retried batch
    -- carries identical reports, so it adds nothing.
    PRIMARY KEY (request_id, start_time, end_time)
);

-- Reports and recovery read by start time, reconciliation by end time.
CREATE INDEX spendguard_ledger_start_time ON spendguard_ledger (start_time);
CREATE INDEX spendguard_ledger_end_time ON spendguard_ledger (end_time);
