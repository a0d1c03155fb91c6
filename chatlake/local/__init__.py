"""The local stack behind `make run` and `make demo`: the HTTP server, the ETL schedule, synthetic traffic."""
