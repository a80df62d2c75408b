-- reads: clicks, repeated_ids
-- creates: copies
-- Dedup stage: every valid copy of a click, ranked within its click_id (README, rule 3).
-- Rank 1 is the winner: the earliest ingest_time to the nanosecond (nulls last), ties broken by source file path
-- and row position (pos). Each copy also carries its winner's ad and minute, so that later
-- stages can group losers under their winner's window, and a copy that disagrees with its
-- winner marks the click_id as a conflict (some copy differs iff one differs from the winner).
--
-- Only the click_ids seen more than once are ranked: repeated_ids is that list, found by sorting
-- the ids (billing.dedup.repeated). A click_id not in it has one copy, its own winner: totals
-- (sql/slice/all_windows.sql) count it where it stands, and conflicts need two copies, so neither needs the
-- single copies ranked.
CREATE OR REPLACE TEMP TABLE copies AS
SELECT
  click_id,
  ad_id,
  minute,
  event_us,
  event_sub_ns,
  ingest_us,
  ingest_sub_ns,
  cost_micros,
  pos,
  row_number() OVER w AS copy_rank,
  first_value(ad_id) OVER w AS won_ad_id,
  first_value(minute) OVER w AS won_minute
FROM (SELECT *, event_us // 60000000 AS minute FROM clicks SEMI JOIN repeated_ids USING (click_id)
      WHERE reason IS NULL)
WINDOW w AS (PARTITION BY click_id ORDER BY ingest_us ASC NULLS LAST, ingest_sub_ns ASC, pos ASC);
