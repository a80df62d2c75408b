-- reads:
-- creates: shared_spans
-- The window_start intervals where two slices' window facts can hold the same window (lo .. hi, both
-- included), for sql/day/batch_windows.sql: a table of their own, as a view takes no parameters.
CREATE OR REPLACE TEMP TABLE shared_spans AS
SELECT unnest($shared_lo::TIMESTAMPTZ[]) AS lo, unnest($shared_hi::TIMESTAMPTZ[]) AS hi;
