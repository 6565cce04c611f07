"""Raw CSVs and Parquet tables: reading, validating and splitting the data. pandas and pyarrow, no torch."""
