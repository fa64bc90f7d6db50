"""Reusable console components: layout and labelled form controls."""
