"""Trace-driven discrete-event simulator driving the scheduler."""
