"""The store: routing log, registered complaints, review queue, responses and audit log."""
