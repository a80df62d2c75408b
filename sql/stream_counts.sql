SELECT
  (SELECT count(*) FROM stream_source)::BIGINT AS rows_read,
  (SELECT count(*) FROM stream_windows WHERE sink_rows > 1)::BIGINT AS duplicate_keys,
  (SELECT count(*) FROM stream_source
    WHERE NOT (window_start >= $day_start AND window_start < $day_end))::BIGINT AS rows_out_of_day,
  coalesce((SELECT sum(clicks) FROM stream_windows), 0)::BIGINT AS clicks;
