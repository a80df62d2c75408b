-- defines: invalid_reason, floor_us, sub_us_ns, arrived_late, is_straggler
-- Validation rules for one raw click, first failing rule wins (README, rule 2).
-- Returns the quarantine reason, or NULL for a valid row.
--   event_us, event_sub_ns: event_time floored to µs since the epoch, and the nanoseconds below that µs (0..999)
--   epoch_ms:    Snowflake epoch in ms since 1970
--   max_skew_us: largest |event_time - time embedded in click_id| in µs; NULL disables the check
-- The time in a click_id is a whole ms, so event_time exceeds it by more than max_skew_us exactly when its
-- floored µs do, or equal it with nanoseconds left over; it falls short by more exactly when its floored µs do.
CREATE OR REPLACE TEMP MACRO invalid_reason(click_id, ad_id, event_us, event_sub_ns, cost_micros, epoch_ms,
                                            max_skew_us) AS
  CASE
    WHEN click_id IS NULL THEN 'null_click_id'
    WHEN ad_id IS NULL THEN 'null_ad_id'
    WHEN event_us IS NULL THEN 'null_event_time'
    WHEN click_id <= 0 THEN 'nonpositive_click_id'
    WHEN cost_micros < 0 THEN 'negative_cost'
    WHEN max_skew_us IS NOT NULL
         AND (abs(event_us - snowflake_ms(click_id, epoch_ms) * 1000) > max_skew_us
              OR (event_us - snowflake_ms(click_id, epoch_ms) * 1000 = max_skew_us AND event_sub_ns > 0))
      THEN 'id_time_mismatch'
  END;

-- An instant in ns since the epoch, floored (never rounded, never truncated towards zero) to µs, and the
-- nanoseconds it leaves (0..999). Flooring never moves an instant into another minute or day.
CREATE OR REPLACE TEMP MACRO floor_us(ns) AS (ns - ((ns % 1000) + 1000) % 1000) // 1000;
CREATE OR REPLACE TEMP MACRO sub_us_ns(ns) AS coalesce((((ns % 1000) + 1000) % 1000)::SMALLINT, 0::SMALLINT);

-- Arrived more than lateness_us after it happened, to the nanosecond: (ingest - event) > lateness.
CREATE OR REPLACE TEMP MACRO arrived_late(ingest_us, ingest_sub_ns, event_us, event_sub_ns, lateness_us) AS
  ingest_us - event_us > lateness_us
  OR (ingest_us - event_us = lateness_us AND ingest_sub_ns > event_sub_ns);

-- A straggler: a row whose arrival (ingest_us, floored µs) is more than lead_us away from the time in its
-- click_id (a late copy, a replay, a skewed clock), or whose id or arrival is unknown. Raw files are
-- written in arrival order, so every other row of a click_id range lies in the few row groups
-- whose ingest_time statistics cover that range (billing.validate, set_aside_stragglers).
CREATE OR REPLACE TEMP MACRO is_straggler(click_id, ingest_us, epoch_ms, lead_us) AS
  click_id IS NULL OR click_id <= 0 OR ingest_us IS NULL
  OR abs(snowflake_ms(click_id, epoch_ms) * 1000 - ingest_us) > lead_us;
