-- Sampling plans (issue 12): a plan's draw is stored here, not in Temporal (10,000 orders are far larger than one
-- payload); the plan workflow (`plan-<plan_id>`) starts its samples from these rows and closes with a summary.
-- `plans` + `plan_samples` are also read by the draw (domain/planning.py) to leave out products already in a
-- higher-level plan of the same period: keep the column names. Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS plans (
    plan_id      text PRIMARY KEY,
    period       text NOT NULL,                  -- 2026, 2026H1, 2026Q4, 2026M03
    level        text NOT NULL,                  -- province, city, county
    region       text NOT NULL,                  -- the organiser's region (GB/T 2260)
    task_type    text NOT NULL,                  -- routine, special, evaluative, linked
    follow_up_of text,                           -- the plan whose failed enterprises this one samples again
    spec         jsonb NOT NULL,                 -- the PlanSpec as started
    excluded     jsonb NOT NULL DEFAULT '[]',    -- the draw's exclusions (product, enterprise, reason)
    workflow_id  text NOT NULL,
    drawn_at     timestamptz,                    -- set once, with the draw's rows, in one transaction
    closed_at    timestamptz,
    summary      jsonb,                          -- the plan's closing progress (PlanProgress)
    created_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS plans_period_idx ON plans (period, level);

CREATE TABLE IF NOT EXISTS plan_samples (
    plan_id       text NOT NULL REFERENCES plans (plan_id),
    seq           integer NOT NULL,              -- the order samples are started in
    sample_no     text NOT NULL UNIQUE,          -- one plan per sample: its workflow id is sample-<sample_no>
    product_code  text NOT NULL,
    credit_code   text NOT NULL,                 -- the sampled party (统一社会信用代码)
    "order"       jsonb NOT NULL,                -- the SampleOrder the sample is started with
    stratum       jsonb NOT NULL,                -- dimension → value (zhejiang_made, channel, price_band, …)
    risk_score    double precision NOT NULL,
    reasons       jsonb NOT NULL,                -- why it was drawn, in Chinese
    amendment     text,                          -- the request id of the amendment that added it (none: the draw)
    started_at    timestamptz,                   -- its SampleWorkflow was started (or found started)
    cancelled_at  timestamptz,                   -- cancelled before its start, or its workflow terminated
    cancel_reason text,
    cancelled_by  jsonb,                         -- the amendment's sender (id, role)
    PRIMARY KEY (plan_id, seq)
);

CREATE INDEX IF NOT EXISTS plan_samples_product_idx ON plan_samples (product_code);
CREATE INDEX IF NOT EXISTS plan_samples_credit_idx ON plan_samples (credit_code);

-- Every amendment sent to a plan, accepted or refused, with its sender and reason; a refused one keeps only a
-- summary of what was sent (size and hash), never the input. A repeat of a request id changes nothing.
CREATE TABLE IF NOT EXISTS plan_amendments (
    plan_id      text NOT NULL,
    request_id   text NOT NULL,
    action       text NOT NULL,                  -- add, cancel, or ? when the payload did not say
    accepted     boolean NOT NULL,
    reason       text,                           -- the sender's reason
    problem      text,                           -- why it was refused (the field named)
    sender       jsonb,
    payload      jsonb NOT NULL,                 -- the amendment as taken, or the summary of a refused input
    outcome      jsonb,                          -- what it did (samples added, cancelled, terminated, …)
    received_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plan_id, request_id, accepted)
);
