"""The procedure: handlers, director commands, daily jobs, retention, GDPR."""
