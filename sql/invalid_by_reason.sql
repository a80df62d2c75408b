SELECT reason, count(*)::BIGINT AS n FROM clicks WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason;
