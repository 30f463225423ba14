-- Credit listings carry their dishonesty tier (《信用修复管理办法》, 国家发展改革委令第36号) and the end of the
-- shortest publicity period, after which repair may be applied for. Listings published before the tiers
-- keep NULL in both.

ALTER TABLE credit_listings ADD COLUMN IF NOT EXISTS dishonesty_tier text
    CHECK (dishonesty_tier IN ('minor', 'general', 'serious'));
ALTER TABLE credit_listings ADD COLUMN IF NOT EXISTS repair_from timestamptz;
