"""Helpers shared by the tests: the in-process CLI, a real server, the hostile corpus, a store worker process."""
