-- Cross-region merge (并案): one row per product case (producer credit code + brand + model).
-- `fails` is a JSON object keyed by sample number, so reporting the same fail again rewrites one key
-- and never adds a second entry; the merged case columns hold the latest merged enforcement case.

CREATE TABLE IF NOT EXISTS product_cases (
    case_workflow_id         text PRIMARY KEY,      -- case-<credit code>-<brand>-<model>
    product_key              jsonb NOT NULL,        -- credit_code, brand, model as sampled (unnormalised)
    credit_code              text NOT NULL,         -- labelled producer, or the sampled party at the producer
    brand                    text NOT NULL,
    model                    text NOT NULL,
    product_code             text,                  -- SAMR classification code
    opened_at                timestamptz NOT NULL,
    fails                    jsonb NOT NULL DEFAULT '{}'::jsonb,   -- sample_no → fail
    merged_case_workflow_id  text,
    merged_at                timestamptz,
    closed_at                timestamptz,           -- the quiet window ended; a later fail reopens it
    updated_at               timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS product_cases_by_credit_code ON product_cases (credit_code);
CREATE INDEX IF NOT EXISTS product_cases_merged ON product_cases (merged_case_workflow_id)
    WHERE merged_case_workflow_id IS NOT NULL;
