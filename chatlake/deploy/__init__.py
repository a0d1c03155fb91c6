"""Deploying to AWS: `deploy`/`destroy`/`doctor`, the pyarrow layer, the Telegram webhook, Athena saved queries."""
