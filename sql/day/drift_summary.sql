-- reads: day_drift
-- returns: one row, summary.json's drift block
-- The drift block of summary.json, from the day's drift as fetched (the Arrow table
-- billing.day.diff registers as day_drift). Sums are HUGEINT: a day's clicks or money may add up
-- past int64 (JSON holds any integer).
SELECT
  count(*)::BIGINT AS keys,
  count(*) FILTER (WHERE flagged)::BIGINT AS flagged,
  coalesce(sum(delta), 0)::HUGEINT AS net_delta_clicks,
  coalesce(sum(abs(delta)), 0)::HUGEINT AS abs_delta_clicks,
  count(*) FILTER (WHERE flagged AND abs(delta) > explained_clicks)::BIGINT AS unexplained_keys,
  coalesce(sum(abs(delta) - explained_clicks) FILTER (WHERE flagged), 0)::HUGEINT AS unexplained_clicks,
  count(money_at_risk_micros)::BIGINT AS priced_keys,
  coalesce(sum(money_at_risk_micros), 0)::HUGEINT AS net_at_risk_micros,
  coalesce(sum(abs(money_at_risk_micros)), 0)::HUGEINT AS abs_at_risk_micros,
  coalesce(sum(abs(money_at_risk_micros)) FILTER (WHERE flagged), 0)::HUGEINT AS flagged_abs_at_risk_micros
FROM day_drift;
