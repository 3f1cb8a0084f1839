"""Limits every worker shares through Redis: the daily shadow budget and the provider's
requests/tokens per minute (with the coalescer that batches their Redis round trips)."""
