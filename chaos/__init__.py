"""Several hosts on one machine: network namespaces, PgBouncer, a nemesis and a history checker."""
