-- reads: drift, shift_shares
-- creates: attributed
-- Cause attribution: for each flagged key, the first cause that explains the whole delta,
-- in the README's order; a key explained only in part gets the cause with the largest share,
-- and the rest of its delta is unexplained. A view: sql/day/drift_money.sql reads it once, so the
-- millions of keys of a day are not materialised one more time.
CREATE OR REPLACE TEMP VIEW attributed AS
WITH shares AS (
  SELECT
    d.*,
    CASE WHEN d.status = 'stream_over' THEN least(d.delta, d.duplicate_copies) ELSE 0 END AS dup_share,
    CASE WHEN d.status = 'stream_under' THEN least(-d.delta, d.late_clicks) ELSE 0 END AS late_share,
    CASE WHEN d.sink_rows > 1 AND d.delta > 0 THEN least(d.delta, d.extra_row_clicks) ELSE 0 END AS sink_share,
    -- what the adjacent flagged minutes of the opposite sign offset, each delta used once in all
    -- (shift_shares: billing.day.diff.pair_shifts over sql/day/shift_candidates.sql)
    coalesce(s.shift_share, 0) AS shift_share
  FROM drift AS d
  LEFT JOIN shift_shares AS s USING (ad_id, window_start)
),
decided AS (
  SELECT
    *,
    CASE
      WHEN NOT flagged THEN NULL
      -- a window on one side only is still a boundary shift when its neighbour holds the opposite delta
      WHEN status IN ('missing_in_stream', 'missing_in_batch') AND shift_share = abs(delta) THEN 'window_boundary_shift'
      WHEN status = 'missing_in_stream' THEN 'missing_window'
      WHEN status = 'missing_in_batch' THEN 'phantom_window'
      WHEN status = 'stream_over' AND delta = duplicate_copies THEN 'raw_duplicates_counted'
      WHEN status = 'stream_under' AND -delta = late_clicks THEN 'late_beyond_stream_watermark'
      WHEN sink_rows > 1 AND delta = extra_row_clicks THEN 'sink_duplicate_rows'
      WHEN shift_share = abs(delta) THEN 'window_boundary_shift'
      WHEN greatest(dup_share, late_share, sink_share, shift_share) > 0 THEN
        CASE greatest(dup_share, late_share, sink_share, shift_share)
          WHEN dup_share THEN 'raw_duplicates_counted'
          WHEN late_share THEN 'late_beyond_stream_watermark'
          WHEN sink_share THEN 'sink_duplicate_rows'
          ELSE 'window_boundary_shift'
        END
      WHEN status = 'stream_over' THEN 'replay_overcount'
      ELSE 'lost_events'
    END AS cause
  FROM shares
)
SELECT
  *,
  CASE
    WHEN cause IS NULL THEN 0
    WHEN cause IN ('missing_window', 'phantom_window', 'replay_overcount', 'lost_events') THEN abs(delta)
    ELSE greatest(dup_share, late_share, sink_share, shift_share)
  END::BIGINT AS explained_clicks
FROM decided;
