"""The durable runtime and schedules: what a flow needs at run time, DBOS start and stop,
scheduled jobs, and the reactions between flows."""
