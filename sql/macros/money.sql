-- defines: div_half_even
-- Integer division n / d (d > 0) rounded half to even, exact on HUGEINT: money never touches floats.
CREATE OR REPLACE TEMP MACRO div_half_even(n, d) AS (
  sign(n::HUGEINT) * (
    abs(n::HUGEINT) // d
    + CASE
        WHEN 2 * (abs(n::HUGEINT) % d) > d THEN 1
        WHEN 2 * (abs(n::HUGEINT) % d) = d AND (abs(n::HUGEINT) // d) % 2 = 1 THEN 1
        ELSE 0
      END
  )
);
