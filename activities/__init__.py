"""Activities: every side effect of Spotcheck (records, notices, deadlines, outbound adapters)."""
