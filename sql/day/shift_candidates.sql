-- reads: drift
-- returns: ad_id, window_start, delta of each flagged key next to a flagged minute of the opposite sign
-- Boundary-shift candidates, in (ad_id, window_start) order: billing.day.diff.pair_shifts pairs them
-- minute by minute so that one key's delta offsets its neighbours' at most once in all (README, causes).
WITH f AS (SELECT ad_id, window_start, delta FROM drift WHERE flagged)
SELECT f.ad_id, f.window_start, f.delta
FROM f
LEFT JOIN f AS p ON p.ad_id = f.ad_id AND p.window_start = f.window_start - INTERVAL 1 MINUTE
LEFT JOIN f AS n ON n.ad_id = f.ad_id AND n.window_start = f.window_start + INTERVAL 1 MINUTE
WHERE sign(p.delta) = -sign(f.delta) OR sign(n.delta) = -sign(f.delta)
ORDER BY f.ad_id, f.window_start;
