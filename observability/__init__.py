"""What operators see of the service besides its answers: the request id carried from the API into
workflows and activities (request_id, interceptors); the metrics live beside what they measure
(api/metrics.py, and the Temporal runtime in temporal_client.py)."""
