"""Stand-ins for the outside systems (carrier, finance, CRM, notifications, purchasing), served over real HTTP.

They keep everything in memory and behave like real providers where it matters to us: bearer
credentials, validated bodies, Idempotency-Key replay, asynchronous tracking webhooks, and
injectable latency, failures and dropped connections.
"""
