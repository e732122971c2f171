"""orchestrator: a serverless-style job runner for lead and CRM automation."""
