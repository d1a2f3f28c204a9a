"""Shared data sets gathered from other agencies (信息归集): dated snapshots kept as Parquet files."""
