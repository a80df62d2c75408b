-- reads: day_drift
-- returns: hour, batch, stream, flagged, abs_delta per hour of day (UTC) that has windows
-- The report's hours chart: batch and stream clicks per hour, and the flagged windows and their |delta|.
SELECT
  hour(window_start)::BIGINT AS hour,
  sum(batch_clicks)::BIGINT AS batch,
  sum(stream_clicks)::BIGINT AS stream,
  count(*) FILTER (WHERE flagged)::BIGINT AS flagged,
  coalesce(sum(abs(delta)) FILTER (WHERE flagged), 0)::BIGINT AS abs_delta
FROM day_drift
GROUP BY ALL
ORDER BY hour;
