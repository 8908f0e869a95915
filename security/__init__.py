"""Security building blocks shared by the API, the worker and the tools: keys, encryption, signatures."""
