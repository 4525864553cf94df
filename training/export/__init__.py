"""Exports of trained models into the served model repository, each checked against the eager model."""
