-- Rectification (责令整改) and follow-up sampling (跟踪抽查) branch of post-handling.
-- One row per branch workflow, keyed by its workflow id: every write is an upsert of the branch's whole
-- current state, so a retried activity or a worker restart never doubles a row.

CREATE TABLE IF NOT EXISTS rectifications (
    workflow_id           text PRIMARY KEY,         -- sample-<no>-rectification
    sample_no             text NOT NULL,
    ordered_at            timestamptz NOT NULL,     -- 责令整改通知书 issued (sample clock)
    due                   timestamptz NOT NULL,     -- deadline in force, extension included
    extension_outcome     text,                     -- granted / refused (one decision only)
    extended_days         int,                      -- days granted
    extension_decided_at  timestamptz,
    report_at             timestamptz,              -- 整改报告 received
    review_outcome        text,                     -- accepted / rejected (整改复查)
    review_reason         text,
    follow_up_sample_no   text,                     -- the 跟踪抽查 sample started after acceptance
    closed_outcome        text,                     -- accepted / rejected / missed
    updated_at            timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rectifications_sample_idx ON rectifications (sample_no);
CREATE INDEX IF NOT EXISTS rectifications_open_idx ON rectifications (due) WHERE closed_outcome IS NULL;
