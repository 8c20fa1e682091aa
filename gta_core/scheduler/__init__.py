"""Scheduling: tasks, their design spaces, search, and the allocation of trials."""
