"""Shared plumbing every domain may use: settings, database, clock, money, masking, crypto, errors."""
