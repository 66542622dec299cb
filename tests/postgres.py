"""The tests' throwaway PostgreSQL cluster (shared with `bench claims`)."""

from redistill_study.bench.pgtemp import PostgresCluster, server_binary

__all__ = ["PostgresCluster", "server_binary"]
