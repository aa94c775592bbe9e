"""Subscriptions: people told by e-mail or a signed webhook when a twin's condition changes (docs/subscriptions.md)."""
