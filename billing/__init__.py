"""billing: the batch side of ad-click counting.

Re-derives the authoritative (ad, minute) click totals from the raw click log,
deduplicated exhaustively by click_id, and diffs them against the stream side.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("billing")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
