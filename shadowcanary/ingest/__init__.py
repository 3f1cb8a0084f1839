"""Ingest: captured events from the tap validated, assessed, stored, replays scheduled."""
