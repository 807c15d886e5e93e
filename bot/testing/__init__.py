"""Test parts shipped with the package: sample messages, in-memory mail."""
