"""Outbound: emails rendered, queued and sent."""
