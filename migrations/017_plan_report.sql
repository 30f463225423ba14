-- A plan's closing report: the oversight report's totals for the plan (activities/reports.py, design §11),
-- written beside the progress summary when the plan closes.
ALTER TABLE plans ADD COLUMN IF NOT EXISTS report jsonb;
