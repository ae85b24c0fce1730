"""Video files for tests, benchmarks and the synthetic video QA data."""
