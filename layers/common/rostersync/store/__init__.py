"""The data-access layer: every DynamoDB, SQS and Secrets Manager call lives here."""
