"""Analysis of finished studies: the summary table (and, built on it, the verdict)."""

from .summary import collect_records, format_table, summary_rows

__all__ = ["collect_records", "format_table", "summary_rows"]
