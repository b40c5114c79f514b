"""Preference datasets, training runs and their registered results (built by the training issue)."""
