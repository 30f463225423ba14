-- One way to write a record (activities/db.py): every "current state" row carries the time of its last write,
-- and a write older than the stored row changes nothing. The rows written without one so far get it here.
-- Existing rows take the epoch (older than any write; '-infinity' would read back as a naive datetime), so
-- the next write to them applies as before.

ALTER TABLE certificate_actions ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT 'epoch';
ALTER TABLE certificate_actions ALTER COLUMN updated_at DROP DEFAULT;

ALTER TABLE platform_actions ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT 'epoch';
ALTER TABLE platform_actions ALTER COLUMN updated_at DROP DEFAULT;

ALTER TABLE leads ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT 'epoch';
ALTER TABLE leads ALTER COLUMN updated_at DROP DEFAULT;

-- The serious-dishonesty check writes beside the listing's own path: its columns get their own write time.
ALTER TABLE credit_listings ADD COLUMN IF NOT EXISTS serious_updated_at timestamptz NOT NULL DEFAULT 'epoch';
