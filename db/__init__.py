"""Data access shared by activities and the API: engine, stock ledger and order records."""
