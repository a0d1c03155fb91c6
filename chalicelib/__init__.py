"""What the Lambda functions import: settings, storage, lake layout, schema, webhook, parsers, ETL. Nothing else."""
