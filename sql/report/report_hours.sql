-- reads: day_drift
-- returns: hour, batch, stream, flagged, abs_delta per hour of day (UTC) that has windows
-- The report's hours chart: batch and stream clicks per hour, and the flagged windows and their |delta|.
-- The hour from the epoch in integers (UTC, any session time zone): the calendar function hour() on
-- TIMESTAMPTZ cost ~3 s over 9.2M windows.
SELECT
  (((epoch_us(window_start) // 3600000000) % 24 + 24) % 24)::BIGINT AS hour,
  sum(batch_clicks)::BIGINT AS batch,
  sum(stream_clicks)::BIGINT AS stream,
  count(*) FILTER (WHERE flagged)::BIGINT AS flagged,
  coalesce(sum(abs(delta)) FILTER (WHERE flagged), 0)::BIGINT AS abs_delta
FROM day_drift
GROUP BY ALL
ORDER BY hour;
