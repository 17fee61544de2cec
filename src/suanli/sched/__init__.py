"""Scheduling: jobs, filter -> score -> allocate plugins, policies."""
