"""A slice: one click_id range landed, validated, deduplicated and totalled in a DuckDB session of its own.

Its result is a folder (:mod:`billing.slice.partial`); slices add up to the day.
"""
