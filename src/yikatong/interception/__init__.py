"""Suspicious-record interception (存疑信息拦截): rules in SQL, runs in DuckDB, flags and verification."""
