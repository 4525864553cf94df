"""The guard in front of Triton: truthful readiness, self-healing, TLS and the audit trail.

``dermassist serve`` runs it: tritonserver listens on loopback only; the guard's gRPC front is
the public inference endpoint (TLS, one audit line per request) and its HTTP endpoint answers
the health probes with the truth that a canary inference established.
"""
