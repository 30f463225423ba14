-- The staff workbench's users (starter/users.py, issue 11): who may sign in, in which roles, for which regions,
-- and the API tokens the CLI signs in with. Idempotent: safe to run again. Passwords are argon2 hashes; tokens
-- are kept only as their SHA-256 (a token is random, 32 bytes: no salt or slow hash needed to protect it).

CREATE TABLE IF NOT EXISTS users (
    id             text PRIMARY KEY,                 -- the actor id of the user's decisions
    display_name   text NOT NULL,
    roles          text[] NOT NULL,                  -- domain.decisions.Role values
    regions        text[] NOT NULL DEFAULT '{}',     -- GB/T 2260 codes the user acts for (330000 covers 3301xx)
    organisation   text,                             -- the user's organisation (set as actor.organisation)
    credit_code    text,                             -- an enterprise user's unified social credit code
    password_hash  text NOT NULL,                    -- argon2id
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_tokens (
    token_sha256   text PRIMARY KEY,
    user_id        text NOT NULL REFERENCES users (id),
    label          text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);

CREATE INDEX IF NOT EXISTS api_tokens_user_idx ON api_tokens (user_id);

-- Who has taken an awaited decision in hand (认领) or been given it by a colleague (指派): advisory, for the
-- inbox; the decision itself is still checked against the user's roles and regions when it is made.
CREATE TABLE IF NOT EXISTS claims (
    workflow_id    text NOT NULL,
    kind           text NOT NULL,
    user_id        text NOT NULL REFERENCES users (id),
    assigned_by    text NOT NULL REFERENCES users (id),
    claimed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, kind)
);
