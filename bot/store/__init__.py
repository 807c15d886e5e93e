"""The store: the register's models, database, schema, dossiers and tokens."""
