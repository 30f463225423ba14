-- Credit branch (信用约束与修复): one row per credit listing of a failed sample on the national enterprise
-- credit publicity system, from publication to removal (expired after its year, or repaired early), with
-- the serious-dishonesty check. Keyed by the branch workflow id: a retried activity upserts the same row.

CREATE TABLE IF NOT EXISTS credit_listings (
    workflow_id          text PRIMARY KEY,            -- sample-<no>-credit
    sample_no            text NOT NULL,
    credit_code          text NOT NULL,
    enterprise_name      text NOT NULL,
    published_at         timestamptz NOT NULL,        -- handed to the publicity system
    publicity_due        timestamptz NOT NULL,        -- latest lawful publication (rule credit_publicity)
    listed_until         timestamptz NOT NULL,        -- end of the one-year listing (rule credit_listing)
    repair_applied_at    timestamptz,                 -- latest credit-repair application
    repair_outcome       text,                        -- refused / rejected / approved (latest application)
    repair_reason        text,
    removed_at           timestamptz,
    removal_reason       text CHECK (removal_reason IN ('expired', 'repaired')),
    serious_dishonesty   text CHECK (serious_dishonesty IN ('proposed', 'listed', 'not_listed')),
    serious_basis        text,                        -- why the criteria were met
    updated_at           timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS credit_listings_by_code ON credit_listings (credit_code);
