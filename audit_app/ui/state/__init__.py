"""Console state: sign-in, the events view, statistics, and their pure helpers."""
