"""Click and impression recording, verdicts (human / scanner / crawler), privacy and figures."""
