-- The workbench's bulk decisions (issue 11): one row per item of a bulk, written before its decision is sent, so
-- a bulk form sent again shows each item's first result and sends nothing twice. Idempotent: safe to run again.

CREATE TABLE IF NOT EXISTS bulk_items (
    bulk_id        text NOT NULL,                    -- the form's id (a UUID, hex)
    workflow_id    text NOT NULL,                    -- the item: the workflow awaiting the decision
    user_id        text NOT NULL REFERENCES users (id),
    kind           text NOT NULL,
    sample_no      text NOT NULL,
    request_id     text NOT NULL,                    -- the decision's, derived from bulk_id and workflow_id
    result         text NOT NULL DEFAULT 'sending',  -- sending, accepted, rejected (by the workflow), refused (here)
    reason         text,
    stage          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    decided_at     timestamptz,
    PRIMARY KEY (bulk_id, workflow_id)
);
