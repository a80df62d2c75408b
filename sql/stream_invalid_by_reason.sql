SELECT reason, count(*)::BIGINT AS n FROM stream_rows WHERE reason IS NOT NULL GROUP BY reason ORDER BY reason;
