-- Registers shared by the post-handling branches: enterprises and their fail history, the results bulletin,
-- the post-licence inspection list, the sampling target list used by plans, shops' fails and the key list.
-- Every write is keyed so a retried activity never doubles a row.

CREATE TABLE IF NOT EXISTS enterprises (
    credit_code   text PRIMARY KEY,
    name          text NOT NULL,
    region        text NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS enterprise_fails (
    sample_no     text PRIMARY KEY,
    credit_code   text NOT NULL,
    role          text NOT NULL,          -- sampled_party or labelled_producer
    region        text NOT NULL,
    product_code  text NOT NULL,
    brand         text NOT NULL,
    model         text NOT NULL,
    batch         text,
    failed_on     date NOT NULL
);
CREATE INDEX IF NOT EXISTS enterprise_fails_by_code ON enterprise_fails (credit_code, failed_on);

CREATE TABLE IF NOT EXISTS results_bulletin (
    sample_no     text PRIMARY KEY,
    workflow_id   text NOT NULL,
    period        text NOT NULL,          -- e.g. 2026-Q4
    verdict       text NOT NULL,
    entry         jsonb NOT NULL,
    published_at  timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS post_licence_list (
    sample_no     text PRIMARY KEY,
    credit_code   text NOT NULL,
    licence_no    text NOT NULL,
    reason        text NOT NULL,
    listed_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS sampling_targets (
    credit_code   text NOT NULL,
    source        text NOT NULL,          -- post_licence_problem, key_list_shop, evaluative_linked, …
    sample_no     text NOT NULL,
    product_code  text NOT NULL,
    region        text NOT NULL,
    note          text,
    added_at      timestamptz NOT NULL,
    PRIMARY KEY (credit_code, source, sample_no)
);

CREATE TABLE IF NOT EXISTS shop_fails (
    sample_no     text PRIMARY KEY,
    platform      text NOT NULL,
    shop_key      text NOT NULL,          -- shop id, or shop name when the platform gives no id
    year          int NOT NULL,
    failed_on     date NOT NULL
);
CREATE INDEX IF NOT EXISTS shop_fails_by_shop ON shop_fails (platform, shop_key, year);

CREATE TABLE IF NOT EXISTS key_list_shops (
    platform      text NOT NULL,
    shop_key      text NOT NULL,
    shop_name     text NOT NULL,
    years         int[] NOT NULL,
    listed_at     timestamptz NOT NULL,
    PRIMARY KEY (platform, shop_key)
);
