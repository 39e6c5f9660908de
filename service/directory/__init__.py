"""The directory: employees and groups, the sources they come from (CSV, Google, Microsoft) and the one sync."""
