-- Result handling per Order 18 chapter 6 (产品质量监督抽查管理暂行办法, 市场监管总局令第18号, Art. 44-49).
-- The rectification row gains the 复查, 公告, second window and 整顿 columns (NULL for runs before it).

ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS re_inspection_due    timestamptz; -- 75 days from the order
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS re_inspection_outcome text;       -- the latest 复查
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS announced_on         date;        -- provincial 公告
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS announcement_no      text;
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS second_window_opens  timestamptz; -- 60 days after the 公告
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS second_window_closes timestamptz; -- 90 days after the 公告
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS suspension_days      int;         -- 整顿 period ordered
ALTER TABLE rectifications ADD COLUMN IF NOT EXISTS suspension_ends      timestamptz;

-- One row per 复查 (Art. 47: within 75 days of the order; Art. 48: 60-90 days after the 公告, and after the
-- 整顿 period). Append-only: a retried write never doubles a row.
CREATE TABLE IF NOT EXISTS re_inspections (
    id                   bigserial PRIMARY KEY,
    workflow_id          text NOT NULL,             -- sample-<no>-rectification
    sample_no            text NOT NULL,
    round                text NOT NULL,             -- first / second / after_suspension
    due                  timestamptz NOT NULL,
    decided_at           timestamptz NOT NULL,
    outcome              text NOT NULL,             -- pass / fail
    reason               text,
    report_no            text,
    sample_provided_free boolean NOT NULL,          -- Art. 49: the 复查 sample is provided free by the party
    request_id           text NOT NULL,
    UNIQUE (workflow_id, round)
);
CREATE INDEX IF NOT EXISTS re_inspections_sample_idx ON re_inspections (sample_no);

-- Hand-overs of result handling with their own record (the message itself is in the outbox): 通报 to the
-- producer's bureau (Art. 44 ¶2), report for the provincial 公告 (Art. 47), 停业整顿 to enforcement and the
-- licence-revocation proposal (Art. 48).
CREATE TABLE IF NOT EXISTS result_handovers (
    id          bigserial PRIMARY KEY,
    workflow_id text NOT NULL,
    step_id     text NOT NULL,
    sample_no   text NOT NULL,
    action      text NOT NULL,
    recipient   text NOT NULL,
    reference   text NOT NULL,                      -- outbox:<id>
    basis       text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}'::jsonb,
    at          timestamptz NOT NULL,
    UNIQUE (workflow_id, step_id)
);
CREATE INDEX IF NOT EXISTS result_handovers_sample_idx ON result_handovers (sample_no);
