-- reads: clicks
-- writes: $folder
-- One part of a day's set-aside rows (sql/slice/read_native.sql's columns: the stragglers of the files its
-- slices read directly, every row of the files they do not), written partitioned by slice into folders
-- k=<slice>. $bounds are the slices' lower bounds after the first, ascending: a row's slice is the last
-- bound its click_id reaches (ASOF), and slice 0 for null and non-positive ids, as the first range holds them.
COPY (
  SELECT a.*, coalesce(b.k, 0) AS k
  FROM clicks a
  ASOF LEFT JOIN (SELECT unnest(range(1, len($bounds) + 1)) AS k, unnest($bounds) AS lo) b ON a.click_id >= b.lo
) TO $folder (FORMAT parquet, PARTITION_BY (k), OVERWRITE);
