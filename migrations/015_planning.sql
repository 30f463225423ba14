-- Issue 12: what plans draw from. The product cycle pool (产品循环池), the risk signals of every source the
-- opinion names (tasks 4, 16), and the sampling frame (抽样框: who can be sampled per product code). Each is
-- imported from CSV (`spotcheck pool|signals|frame import`); re-importing a row changes nothing, importing a
-- changed row updates it. When a code was last sampled, and fails and leads as signals, are read from the
-- samples' own tables (samples, enterprise_fails, leads).

CREATE TABLE IF NOT EXISTS product_pool (
    product_code   text PRIMARY KEY,          -- SAMR product classification code
    name           text NOT NULL,
    category       text NOT NULL,
    standards      text[] NOT NULL,
    cycle_months   int NOT NULL CHECK (cycle_months > 0),
    note           text,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS risk_signals (
    source         text NOT NULL,             -- domain.risk.SignalSource
    reference      text NOT NULL,             -- the source's own id of the signal
    product_code   text NOT NULL,
    region         text NOT NULL,             -- 000000: nationwide
    credit_code    text,
    weight         double precision NOT NULL CHECK (weight > 0),
    observed_on    date NOT NULL,
    note           text,
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (source, reference)
);
CREATE INDEX IF NOT EXISTS risk_signals_by_code ON risk_signals (product_code, observed_on);

CREATE TABLE IF NOT EXISTS sampling_frame (
    candidate_id   text PRIMARY KEY,
    product_code   text NOT NULL,
    region         text NOT NULL,
    credit_code    text NOT NULL,
    channel        text NOT NULL,
    candidate      jsonb NOT NULL,            -- the whole domain.frame.Candidate
    updated_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS sampling_frame_by_code ON sampling_frame (product_code, region);
