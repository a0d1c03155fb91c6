"""Deploying to AWS: the pyarrow layer, the Telegram webhook registration."""
