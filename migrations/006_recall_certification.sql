-- Recall (缺陷研判与召回) and CCC certificate action (认证处置) branches of post-handling.
-- One row per branch workflow, keyed by its workflow id: every write is an upsert of the branch's whole
-- current state, so a retried activity or a worker restart never doubles a row.

CREATE TABLE IF NOT EXISTS recalls (
    workflow_id     text PRIMARY KEY,               -- sample-<no>-recall
    sample_no       text NOT NULL,
    assessment      text,                           -- defect / no_defect (缺陷研判)
    recall_type     text,                           -- voluntary / ordered (责令召回)
    plan_at         timestamptz,                    -- recall plan filed (sample clock)
    progress        jsonb NOT NULL DEFAULT '[]',    -- progress reports (阶段性报告), in order
    completed_at    timestamptz,                    -- the report that said the recall is complete
    summary_at      timestamptz,                    -- summary report filed (召回总结)
    closed_outcome  text,                           -- no_defect / recalled
    updated_at      timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS recalls_sample_idx ON recalls (sample_no);
CREATE INDEX IF NOT EXISTS recalls_open_idx ON recalls (updated_at) WHERE closed_outcome IS NULL;

CREATE TABLE IF NOT EXISTS certificate_actions (
    workflow_id         text PRIMARY KEY,           -- sample-<no>-certification
    sample_no           text NOT NULL,
    certificate_no      text NOT NULL,              -- the CCC certificate of the failed product
    body_notified_at    timestamptz,                -- 认证机构告知函 handed over
    handover_reference  text,                       -- the adapter's reference (outbox:<id> by default)
    action              text,                       -- suspended / revoked / none
    reason              text,
    decided_at          timestamptz
);
CREATE INDEX IF NOT EXISTS certificate_actions_sample_idx ON certificate_actions (sample_no);
CREATE INDEX IF NOT EXISTS certificate_actions_certificate_idx ON certificate_actions (certificate_no);
