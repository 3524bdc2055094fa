"""HTTP face: thin routes over flows and queries."""
