"""Test-support code shared by the test suite (local HTTP server, helpers)."""
