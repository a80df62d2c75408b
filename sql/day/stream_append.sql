-- reads: stream_arrow
-- appends: stream_source
-- One piece of the stream side's rows (a file's row group, billing.io.stream.stream_pieces) added to
-- stream_source (sql/day/stream_source.sql).
INSERT INTO stream_source SELECT * FROM stream_arrow;
