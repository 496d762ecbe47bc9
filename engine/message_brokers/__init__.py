"""Message brokers for notification events."""
