"""File imports (CSV, Excel): all-or-nothing, with a row/column/reason report in Chinese."""
