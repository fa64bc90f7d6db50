"""The audit domain: plain functions over a database session, shared by the API and the UI."""
