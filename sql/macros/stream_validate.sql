-- defines: stream_invalid_reason
-- Validation rules for one stream row, first failing rule wins (README, rule 6).
-- Returns the quarantine reason, or NULL for a valid row.
--   window_ns: the ns below the microsecond window_start was floored to (ns files only; else 0),
--              so a ns value 10:05:00.000000001 is judged at full precision.
CREATE OR REPLACE TEMP MACRO stream_invalid_reason(ad_id, window_start, clicks, spend_micros, window_ns) AS
  CASE
    WHEN ad_id IS NULL THEN 'null_ad_id'
    WHEN window_start IS NULL THEN 'null_window_start'
    WHEN clicks IS NULL THEN 'null_clicks'
    WHEN clicks < 0 THEN 'negative_clicks'
    WHEN spend_micros < 0 THEN 'negative_spend'
    WHEN epoch_us(window_start) % 60000000 <> 0 OR window_ns <> 0 THEN 'unaligned_window'
  END;
