"""smallpond: DuckDB-based data processing on threefs, with GraySort."""
