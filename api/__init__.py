"""The HTTP API: starts and queries order workflows, reads and changes stock, takes carrier webhooks."""
