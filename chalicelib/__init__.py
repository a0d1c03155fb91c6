"""chatlake's logic: storage, webhooks, payload parsing, the ETL, SQL and the CLI."""
