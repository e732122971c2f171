"""HTTP plumbing the controllers share: problem+json answers, idempotent POSTs, delivery after commit."""
