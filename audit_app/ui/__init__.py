"""The compliance console: Reflex pages and state over the audit domain."""
