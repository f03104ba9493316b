"""Worker threads: each runs its own event loop and keeps the connections it accepts for life
(docs/architecture.md)."""
