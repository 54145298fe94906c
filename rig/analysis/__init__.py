"""Analysis of what the bench recorded: current traces, AT transcripts, report timing."""
