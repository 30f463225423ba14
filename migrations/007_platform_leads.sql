-- The platform branch's delisting requests (网抽) and the leads found while buying (检监联动), one row per
-- branch workflow; and a fix to the fail history so a sample can record both of its enterprises.
-- Every write is keyed by the workflow id (or sample no + credit code) so a retried activity doubles nothing.

CREATE TABLE IF NOT EXISTS platform_actions (
    workflow_id         text PRIMARY KEY,     -- sample-<no>-platform
    sample_no           text NOT NULL,
    platform            text NOT NULL,
    shop                text NOT NULL,        -- shop name (shop id in the notice and handover when known)
    listing_id          text NOT NULL,
    requested_at        timestamptz NOT NULL, -- on the sample's clock
    handover_reference  text NOT NULL,        -- the platform's reference, or outbox:<id>
    due                 timestamptz NOT NULL, -- rule platform_delisting
    confirmation        text,                 -- delisted | refused
    confirmation_reason text,
    confirmed_at        timestamptz,
    key_listed          boolean NOT NULL DEFAULT false,
    closed_outcome      text
);
CREATE INDEX IF NOT EXISTS platform_actions_by_sample ON platform_actions (sample_no);

CREATE TABLE IF NOT EXISTS leads (
    workflow_id         text PRIMARY KEY,     -- sample-<no>-lead-<n>
    sample_no           text NOT NULL,
    lead_no             int NOT NULL,
    type                text NOT NULL,        -- domain.decisions.LeadType
    description         text NOT NULL,
    evidence            jsonb NOT NULL,       -- [{name, sha256, uri?}]: the proof is the hash (固证)
    routed_to           text NOT NULL,
    handover_reference  text,
    recorded_at         timestamptz NOT NULL,
    outcome             text,                 -- confirmed | unfounded
    outcome_reason      text,
    closed_at           timestamptz,
    UNIQUE (sample_no, lead_no)
);

-- 002 keyed enterprise_fails by sample_no alone, which leaves no room for the labelled producer's row next
-- to the seller's (column `role`). Key it by (sample_no, credit_code); readers query by credit code anyway.
DO $$
BEGIN
    IF EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = 'enterprise_fails'::regclass AND contype = 'p' AND array_length(conkey, 1) = 1
    ) THEN
        ALTER TABLE enterprise_fails DROP CONSTRAINT enterprise_fails_pkey;
        ALTER TABLE enterprise_fails ADD PRIMARY KEY (sample_no, credit_code);
    END IF;
END
$$;
