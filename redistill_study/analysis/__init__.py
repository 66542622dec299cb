"""Analysis of finished studies from plain records: the verdict, exploratory comparisons, the
power calculator, tables and the dashboard. Nothing here reads the stores or the runner."""
