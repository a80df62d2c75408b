"""Where data comes from: storage (local, S3), the raw click files and the stream files of a day.

Nothing here judges values; it finds files, checks their structure and hands on normalised rows.
"""
