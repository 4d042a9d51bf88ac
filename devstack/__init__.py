"""The local stack: embedded PostgreSQL, the ministack S3/SQS emulator, and the provisioning
that gives them the buckets and queues picforge needs. `make dev` and the tests share it."""
