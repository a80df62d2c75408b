-- Validation rules for one raw click, first failing rule wins (README, rule 2).
-- Returns the quarantine reason, or NULL for a valid row.
--   epoch_ms:    Snowflake epoch in ms since 1970
--   max_skew_us: largest |event_time - time embedded in click_id| in µs; NULL disables the check
CREATE OR REPLACE TEMP MACRO invalid_reason(click_id, ad_id, event_time, cost_micros, epoch_ms, max_skew_us) AS
  CASE
    WHEN click_id IS NULL THEN 'null_click_id'
    WHEN ad_id IS NULL THEN 'null_ad_id'
    WHEN event_time IS NULL THEN 'null_event_time'
    WHEN click_id <= 0 THEN 'nonpositive_click_id'
    WHEN cost_micros < 0 THEN 'negative_cost'
    WHEN max_skew_us IS NOT NULL
         AND abs(epoch_us(event_time) - ((click_id >> 22) + epoch_ms) * 1000) > max_skew_us
      THEN 'id_time_mismatch'
  END;

-- A straggler: a row whose arrival is more than lead_us away from the time in its click_id
-- (a late copy, a replay, a skewed clock), or whose id or arrival is unknown. Raw files are
-- written in arrival order, so every other row of a click_id range lies in the few row groups
-- whose ingest_time statistics cover that range (billing.validate, set_aside_stragglers).
CREATE OR REPLACE TEMP MACRO is_straggler(click_id, ingest_time, epoch_ms, lead_us) AS
  click_id IS NULL OR click_id <= 0 OR ingest_time IS NULL
  OR abs(((click_id >> 22) + epoch_ms) * 1000 - epoch_us(ingest_time)) > lead_us;
