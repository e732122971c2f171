"""Who may call the API: API keys with a scope, checked on every request, and a rate per key."""
