-- reads: report_ads
-- returns: the $top ads with the largest |money at risk| and the $top with the largest |delta| (ties by ad)
-- The candidates of the report's two top-ads tables (billing.report.page picks and orders each from them).
WITH by_money AS (
  SELECT * FROM report_ads WHERE money_at_risk_micros <> 0
  ORDER BY abs(money_at_risk_micros) DESC, ad_id LIMIT $top
),
by_delta AS (
  SELECT * FROM report_ads WHERE delta <> 0 ORDER BY abs(delta) DESC, ad_id LIMIT $top
)
SELECT * FROM by_money
UNION
SELECT * FROM by_delta
ORDER BY ad_id;
