-- Spotcheck core records: the queryable state of samples, the audit trail of decisions, the notices
-- issued and the outbox of messages for outside parties. Idempotent: safe to run again.
-- Every write from an activity is keyed (workflow id + step or request id), so a retry writes nothing new.

CREATE TABLE IF NOT EXISTS samples (
    sample_no        text PRIMARY KEY,
    workflow_id      text NOT NULL UNIQUE,
    seq              bigint NOT NULL,            -- monotonic per workflow: only a newer projection applies
    stage            text NOT NULL,
    verdict          text NOT NULL,
    "order"          jsonb NOT NULL,             -- the SampleOrder as started
    -- extracted from the order for querying
    product_code     text,                       -- order.product.classification_code
    region           text,                       -- order.region
    channel          text,                       -- order.channel
    task_type        text,                       -- order.task_type
    enterprise_code  text,                       -- order.sampled_party.credit_code
    plan_id          text,                       -- order.plan_id
    awaiting_kind    text,
    awaiting_role    text,
    next_deadline    timestamptz,
    overdue          boolean NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS samples_stage_idx ON samples (stage);
CREATE INDEX IF NOT EXISTS samples_region_stage_idx ON samples (region, stage);
CREATE INDEX IF NOT EXISTS samples_overdue_idx ON samples (region, next_deadline) WHERE overdue;
CREATE INDEX IF NOT EXISTS samples_next_deadline_idx ON samples (next_deadline) WHERE next_deadline IS NOT NULL;
CREATE INDEX IF NOT EXISTS samples_enterprise_idx ON samples (enterprise_code);
CREATE INDEX IF NOT EXISTS samples_product_idx ON samples (product_code);
CREATE INDEX IF NOT EXISTS samples_plan_idx ON samples (plan_id);
CREATE INDEX IF NOT EXISTS samples_awaiting_role_idx ON samples (awaiting_role) WHERE awaiting_role IS NOT NULL;

-- The audit trail: every decision received, accepted or rejected. A rejected attempt and a later accepted
-- one with the same request id are both kept, each only once.
CREATE TABLE IF NOT EXISTS decisions (
    id           bigserial PRIMARY KEY,
    workflow_id  text NOT NULL,
    request_id   text NOT NULL,
    kind         text NOT NULL,
    outcome      text NOT NULL,
    accepted     boolean NOT NULL,
    reason       text,
    actor        jsonb NOT NULL,
    actor_id     text,
    actor_role   text,
    decision     jsonb NOT NULL,                 -- as received (raw when malformed)
    stage        text NOT NULL,                  -- the stage when it arrived
    via          text NOT NULL,                  -- signal or update
    received_at  timestamptz NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT decisions_key UNIQUE (workflow_id, request_id, accepted)
);

CREATE INDEX IF NOT EXISTS decisions_workflow_idx ON decisions (workflow_id, received_at, id);
CREATE INDEX IF NOT EXISTS decisions_actor_idx ON decisions (actor_id);

-- Official documents, rendered once per workflow step and kept with the hash of their text.
CREATE TABLE IF NOT EXISTS notices (
    id           bigserial PRIMARY KEY,
    workflow_id  text NOT NULL,
    step_id      text NOT NULL,
    template     text NOT NULL,
    title        text NOT NULL,
    body         text NOT NULL,
    sha256       char(64) NOT NULL,
    issued_at    timestamptz NOT NULL,
    CONSTRAINT notices_key UNIQUE (workflow_id, step_id)
);

-- Messages for outside parties (reminders, escalations, notice deliveries); an adapter sends them later.
CREATE TABLE IF NOT EXISTS outbox (
    id           bigserial PRIMARY KEY,
    workflow_id  text NOT NULL,
    step_id      text NOT NULL,
    channel      text NOT NULL,
    recipient    text NOT NULL,
    subject      text NOT NULL,
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at   timestamptz NOT NULL,
    sent_at      timestamptz,
    CONSTRAINT outbox_key UNIQUE (workflow_id, step_id)
);

CREATE INDEX IF NOT EXISTS outbox_unsent_idx ON outbox (channel, created_at) WHERE sent_at IS NULL;
