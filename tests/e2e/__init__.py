"""Browser tests of the compliance console."""
