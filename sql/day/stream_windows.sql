-- reads: stream_rows
-- creates: stream_windows
-- Stream side: the sink's valid rows of day D, summed per (ad_id, window_start) (README, rule 6).
-- sink_rows > 1 marks a duplicated sink key; extra_row_clicks is what the rows beyond the
-- largest one add (a non-idempotent sink re-emitting a window). The key's spend is known only
-- when every one of its rows carries a spend (a file without spend_micros, or a NULL, makes it NULL).
-- Several sink rows of one key may add up past BIGINT: such a key is marked (overflows) and its sums
-- left NULL, and sql/day/stream_overflow.sql names it before anything reads them. The sums are kept as
-- BIGINT, not HUGEINT: on a long-tail day this table holds tens of millions of keys.
CREATE OR REPLACE TEMP TABLE stream_windows AS
SELECT
  ad_id,
  window_start,
  try_cast(sum(clicks) AS BIGINT) AS clicks,
  try_cast(CASE WHEN count(spend_micros) = count(*) THEN sum(spend_micros) END AS BIGINT) AS spend_micros,
  count(*)::BIGINT AS sink_rows,
  try_cast(sum(clicks) - max(clicks) AS BIGINT) AS extra_row_clicks,
  sum(clicks) NOT BETWEEN -9223372036854775808 AND 9223372036854775807
    OR coalesce(CASE WHEN count(spend_micros) = count(*) THEN sum(spend_micros) END
                NOT BETWEEN -9223372036854775808 AND 9223372036854775807, FALSE) AS overflows
FROM stream_rows
WHERE reason IS NULL AND window_start >= $day_start AND window_start < $day_end
GROUP BY ad_id, window_start;
