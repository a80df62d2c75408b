-- reads: report_ads
-- returns: every ad of report_ads, by ad_id (ads_daily.csv)
-- What ads_daily.csv lists, read a batch at a time: a long tail of ads can be millions.
SELECT * FROM report_ads ORDER BY ad_id;
