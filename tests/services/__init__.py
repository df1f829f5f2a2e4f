"""Real servers the tests install (scripts/install-test-services.sh) and start themselves."""

from tests.services.cassandra_node import CassandraNode, CassandraNodeError, cassandra_home, ensure_installed

__all__ = ["CassandraNode", "CassandraNodeError", "cassandra_home", "ensure_installed"]
