"""Reading and checking the data: ingest, validation (Great Expectations), frequency, built-in data sets."""
