"""Intake: messages in, from their source to a decision."""
