"""`make bench`: the order path measured against bare Temporal workflows on the same server."""
