"""The social-media charter: written by comms in Markdown, commented passage by passage by employees, published
as numbered versions; sharing unlocks once an employee has accepted the current major version (gate.py)."""
