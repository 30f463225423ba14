-- Delivery of the outbox (activities/outbox.py): a dispatcher claims a due row for a lease, sends it through
-- the adapter configured for its channel, then marks it sent (or schedules the next attempt, or failed).
-- Idempotent: safe to run again. Times are the database's own (now()), so dispatchers on several machines
-- agree on leases and back-off whatever their clocks say.

ALTER TABLE outbox ADD COLUMN IF NOT EXISTS attempts            integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claim_id            uuid;         -- the attempt holding the lease
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS claimed_until       timestamptz;  -- no other dispatcher sends it before
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS next_attempt_at     timestamptz;  -- back-off after a failed attempt
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS last_error          text;         -- status and reason, never a secret
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS failed_at           timestamptz;  -- given up: `spotcheck outbox retry`
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS retried_at          timestamptz;  -- put back by an operator: age counts from here
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS delivered_reference text;         -- the receiver's reference

-- What a dispatcher looks for: unsent, not given up, per channel, by when it is due.
CREATE INDEX IF NOT EXISTS outbox_due_idx ON outbox (channel, next_attempt_at, created_at)
    WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_failed_idx ON outbox (failed_at) WHERE failed_at IS NOT NULL AND sent_at IS NULL;
