-- Enforcement branch (移交执法稽查, 行刑衔接): one row per case handed to enforcement, from the hand-over of
-- the case file through filing (立案), outcome and any criminal transfer (移送公安机关). Keyed by the branch
-- workflow id (sample-<no>-enforcement, or case-… for a cross-region merged case): a retried activity or a
-- restarted worker upserts the same row, and a column once set is only replaced by a newer value.

CREATE TABLE IF NOT EXISTS enforcement_cases (
    workflow_id          text PRIMARY KEY,
    sample_no            text,                        -- null for a merged case (see merged_samples)
    merged_samples       jsonb,                       -- [{sample_no, workflow_id, region, batch}] of a merged case
    reason               text NOT NULL,               -- final_fail, refusal, rectification_missed, … or free text
    handed_over_at       timestamptz,                 -- case file handed to the enforcement system
    handover_reference   text,                        -- the enforcement system's reference (outbox:<id> when queued)
    filing_due           date,                        -- rule case_filing, moved once by an approved extension
    filing_outcome       text CHECK (filing_outcome IN ('filed', 'not_filed')),
    case_no              text,                        -- 立案号
    outcome_due          date,                        -- rule case_handling, moved once by an approved extension
    outcome              text CHECK (outcome IN ('penalty', 'no_penalty')),
    fine_amount          numeric(14, 2),              -- 罚没款, CNY
    heavy                boolean,                     -- a heavy penalty (counts for the serious-dishonesty check)
    crime_decision       text CHECK (crime_decision IN ('transfer', 'no_transfer')),
    transferred_at       timestamptz,                 -- handed to the public security organ
    transfer_receipt_at  timestamptz,                 -- the organ's receipt (回执)
    followed_case        text,                        -- the merged case this branch follows instead
    closed_outcome       text,                        -- the branch's outcome when it closed
    updated_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS enforcement_cases_by_sample ON enforcement_cases (sample_no);
CREATE INDEX IF NOT EXISTS enforcement_cases_open ON enforcement_cases (filing_due) WHERE closed_outcome IS NULL;
