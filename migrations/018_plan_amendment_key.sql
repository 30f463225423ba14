-- A plan amendment's proof of its sender (design §13): the id of the deployment key whose signature proved it,
-- none when it was unsigned or its signature did not prove it. Idempotent: safe to run again.
ALTER TABLE plan_amendments ADD COLUMN IF NOT EXISTS key_id text;
