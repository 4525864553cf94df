"""Locust load tests of the served ``dermassist`` ensemble over raw gRPC (see docs/operations.md)."""
