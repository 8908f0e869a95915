"""Fault drills: batches of orders through the whole stack while one part of it fails, and the books audited.

harness.py starts the stack as `make run` does, on the suite's own PostgreSQL server (postgres.py);
batch.py plans the orders, shop.py places them as a retrying client, drill.py runs a drill,
books.py audits the outcome, report.py prints the figures, test_faults.py holds the drills.
"""
