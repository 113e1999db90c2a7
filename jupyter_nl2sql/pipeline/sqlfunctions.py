"""The allow-list: which functions, table functions, catalog relations and statements a read-only query may use.

Per dialect (``sqlite``, ``duckdb``, ``postgres``), a function is allowed when the engine's own catalogue
(:mod:`jupyter_nl2sql.pipeline.catalogues`, read from the engines) lists it as a pure read: PostgreSQL's
IMMUTABLE and STABLE built-ins less those that read files, run SQL text or show other sessions, plus the VOLATILE
ones that only read (``random``, ``clock_timestamp``, size functions...); DuckDB's scalar and aggregate functions
plus a short list of table functions that read the catalog; SQLite's ``function_list`` less ``load_extension``.
Anything else is refused by name:

* :data:`WRITE` functions (``nextval``, ``set_config``, advisory locks...) change the database or the session and
  run only when writes are allowed;
* :data:`ADMIN` functions (server files, other sessions, replication slots, statistics resets, backups, profiling
  and logging, extensions) are never run, ``allow_writes`` or not;
* unknown functions (user-defined, or from an extension) are refused unless writes are allowed, except that an
  unknown name in the engine's own namespace (PostgreSQL ``pg_*``, DuckDB table functions) counts as ADMIN.

Catalog relations are allowed the same way: ``information_schema`` everywhere, PostgreSQL ``pg_catalog`` less the
relations that hold password hashes, other sessions' queries, server configuration files or raw table data.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from .catalogues import (DUCKDB_CATALOG_VIEWS, DUCKDB_FUNCTIONS, DUCKDB_PRAGMAS, DUCKDB_TABLE_FUNCTIONS,
                         DUCKDB_VOLATILE, POSTGRES_CATALOG_RELATIONS, POSTGRES_IMMUTABLE, POSTGRES_STABLE,
                         POSTGRES_VOLATILE, SQLITE_FUNCTIONS, SQLITE_MODULES)

DIALECTS = ("sqlite", "duckdb", "postgres")


@dataclass(frozen=True)
class Denied:
    """Why a statement, function or relation is refused.

    ``escape`` marks things that reach outside the query's data (files, network, other sessions, the server itself,
    server administration): they are refused even when writes are allowed.
    """

    reason: str
    escape: bool = False


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# --- functions: refusals with their reasons ---------------------------------------------------------------------

_FILES = "reads or writes files or URLs"
_SQL_TEXT = "runs the SQL text it is given"

#: Functions refused with a specific reason.  Keys are lower case; a trailing ``*`` matches a prefix.  A name of
#: one engine is refused on every dialect (it does not exist on the others, so nothing honest is lost).
DENIED_FUNCTIONS: dict[str, Denied] = {
    # PostgreSQL: server files, other sessions, server administration
    "pg_sleep*": Denied("stalls the session (PostgreSQL pg_sleep)", escape=True),
    "pg_read_*": Denied("reads server files (PostgreSQL)", escape=True),
    "pg_ls_*": Denied("lists server directories (PostgreSQL)", escape=True),
    "pg_stat_file": Denied("inspects server files (PostgreSQL)", escape=True),
    "pg_file_*": Denied("writes server files (PostgreSQL adminpack)", escape=True),
    "pg_logdir_ls": Denied("lists server directories (PostgreSQL adminpack)", escape=True),
    "pg_current_logfile": Denied("names server files (PostgreSQL)", escape=True),
    "lo_*": Denied("large objects import/export server files (PostgreSQL)", escape=True),
    "loread": Denied("reads large objects (PostgreSQL)", escape=True),
    "lowrite": Denied("writes large objects (PostgreSQL)", escape=True),
    "dblink*": Denied("connects to other databases (PostgreSQL dblink)", escape=True),
    "query_to_xml*": Denied(f"{_SQL_TEXT} (PostgreSQL)", escape=True),
    "cursor_to_xml*": Denied("reads an open cursor (PostgreSQL)", escape=True),
    "table_to_xml*": Denied("reads a table named by a string (PostgreSQL)", escape=True),
    "schema_to_xml*": Denied("reads every table of a schema (PostgreSQL)", escape=True),
    "database_to_xml*": Denied("reads every table of the database (PostgreSQL)", escape=True),
    "ts_stat": Denied(f"{_SQL_TEXT} (PostgreSQL)", escape=True),
    "ts_rewrite": Denied(f"{_SQL_TEXT} (PostgreSQL)", escape=True),
    "crosstab*": Denied(f"{_SQL_TEXT} (PostgreSQL tablefunc)", escape=True),
    "pg_stat_statements*": Denied("shows other sessions' queries (PostgreSQL)", escape=True),
    "pg_stat_get_activity": Denied("shows other sessions' queries (PostgreSQL)", escape=True),
    "pg_stat_get_backend_*": Denied("shows other sessions (PostgreSQL)", escape=True),
    "pg_terminate_backend": Denied("kills other sessions (PostgreSQL)", escape=True),
    "pg_cancel_backend": Denied("cancels other sessions' queries (PostgreSQL)", escape=True),
    "pg_stat_reset*": Denied("resets server statistics (PostgreSQL server administration)", escape=True),
    "pg_*replication_slot*": Denied("creates, drops or reads replication slots (PostgreSQL server administration)",
                                    escape=True),
    "pg_logical_slot_*": Denied("consumes a replication slot (PostgreSQL server administration)", escape=True),
    "pg_replication_origin*": Denied("changes replication origins (PostgreSQL server administration)",
                                     escape=True),
    "pg_backup_*": Denied("enters or leaves backup mode (PostgreSQL server administration)", escape=True),
    "pg_start_backup": Denied("enters backup mode (PostgreSQL server administration)", escape=True),
    "pg_stop_backup": Denied("leaves backup mode (PostgreSQL server administration)", escape=True),
    "pg_wal_replay_*": Denied("pauses or resumes recovery (PostgreSQL server administration)", escape=True),
    "pg_reload_conf": Denied("reloads the server configuration (PostgreSQL server administration)", escape=True),
    "pg_rotate_logfile*": Denied("rotates the server log (PostgreSQL server administration)", escape=True),
    "pg_switch_wal": Denied("switches the WAL file (PostgreSQL server administration)", escape=True),
    "pg_promote": Denied("promotes a standby (PostgreSQL server administration)", escape=True),
    "pg_create_restore_point": Denied("writes a restore point (PostgreSQL server administration)", escape=True),
    "pg_logical_emit_message": Denied("writes to the WAL (PostgreSQL server administration)", escape=True),
    "pg_import_system_collations": Denied("changes the catalog (PostgreSQL server administration)", escape=True),
    "pg_log_backend_memory_contexts": Denied("writes the server log (PostgreSQL server administration)",
                                             escape=True),
    "pg_export_snapshot": Denied("exports a snapshot to other sessions (PostgreSQL)", escape=True),
    "pg_config": Denied("shows the server's build paths (PostgreSQL)", escape=True),
    "binary_upgrade_*": Denied("changes the catalog (PostgreSQL pg_upgrade)", escape=True),
    "brin_*summarize*": Denied("rewrites an index (PostgreSQL)", escape=True),
    "gin_clean_pending_list": Denied("rewrites an index (PostgreSQL)", escape=True),
    "set_config": Denied("changes session settings (PostgreSQL)"),
    "nextval": Denied("advances a sequence (PostgreSQL, DuckDB)"),
    "setval": Denied("sets a sequence (PostgreSQL)"),
    "setseed": Denied("changes the session's random seed (PostgreSQL, DuckDB)"),
    "txid_current": Denied("assigns a transaction id (PostgreSQL)"),
    "pg_current_xact_id": Denied("assigns a transaction id (PostgreSQL)"),
    "pg_notify": Denied("sends notifications to other sessions (PostgreSQL)"),
    "pg_advisory*": Denied("takes locks that outlive the query (PostgreSQL)"),
    "pg_try_advisory*": Denied("takes locks that outlive the query (PostgreSQL)"),
    # DuckDB: files, URLs, other databases, session state
    "read_*": Denied(f"{_FILES} (DuckDB read_csv, read_parquet, read_json, read_text...)", escape=True),
    "parquet_*": Denied(f"{_FILES} (DuckDB parquet_scan, parquet_metadata...)", escape=True),
    "sniff_csv": Denied("reads files (DuckDB)", escape=True),
    "glob": Denied("lists files (DuckDB glob)", escape=True),
    "getenv": Denied("reads the server's environment (DuckDB)", escape=True),
    "iceberg_*": Denied(f"{_FILES} (DuckDB iceberg)", escape=True),
    "delta_scan": Denied(f"{_FILES} (DuckDB delta)", escape=True),
    "sqlite_scan": Denied("reads another database file (DuckDB sqlite)", escape=True),
    "sqlite_attach": Denied("attaches another database file (DuckDB sqlite)", escape=True),
    "postgres_*": Denied("connects to other databases (DuckDB postgres)", escape=True),
    "mysql_*": Denied("connects to other databases (DuckDB mysql)", escape=True),
    "st_read": Denied("reads files (DuckDB spatial)", escape=True),
    "http_*": Denied("makes network requests (DuckDB http_client)", escape=True),
    "query": Denied(f"{_SQL_TEXT} (DuckDB)", escape=True),
    "query_table": Denied("reads tables named by a string (DuckDB)", escape=True),
    "histogram": Denied("reads a table named by a string (DuckDB)", escape=True),
    "histogram_values": Denied("reads a table named by a string (DuckDB)", escape=True),
    "json_execute_serialized_sql": Denied("runs serialized SQL (DuckDB)", escape=True),
    "duckdb_secret*": Denied("lists stored credentials (DuckDB)", escape=True),
    "which_secret": Denied("looks up stored credentials (DuckDB)", escape=True),
    "duckdb_logs*": Denied("reads the engine log (DuckDB)", escape=True),
    "duckdb_log_contexts": Denied("reads the engine log (DuckDB)", escape=True),
    "duckdb_external_file_cache": Denied("lists cached files (DuckDB)", escape=True),
    "duckdb_profiling_settings": Denied("changes profiling settings (DuckDB)", escape=True),
    "enable_*": Denied("changes session settings such as profiling and logging (DuckDB)", escape=True),
    "disable_*": Denied("changes session settings such as profiling and logging (DuckDB)", escape=True),
    "truncate_duckdb_logs": Denied("deletes the engine log (DuckDB)", escape=True),
    "checkpoint": Denied("writes the database file (DuckDB server administration)", escape=True),
    "force_checkpoint": Denied("writes the database file (DuckDB server administration)", escape=True),
    "write_log": Denied("writes the engine log (DuckDB)", escape=True),
    "sleep_ms": Denied("stalls the session (DuckDB)", escape=True),
    "arrow_scan*": Denied("reads process memory (DuckDB)", escape=True),
    "pandas_scan": Denied("reads process memory (DuckDB)", escape=True),
    "python_map_function": Denied("runs Python code (DuckDB)", escape=True),
    # SQLite
    "load_extension": Denied("loads native code (SQLite)", escape=True),
    "readfile": Denied("reads files (SQLite shell)", escape=True),
    "writefile": Denied("writes files (SQLite shell)", escape=True),
    "edit": Denied("starts an editor (SQLite shell)", escape=True),
    "fsdir": Denied("lists directories (SQLite fileio)", escape=True),
    "zipfile*": Denied("reads and writes zip files (SQLite zipfile)", escape=True),
    "fts3_tokenizer": Denied("can install native tokenizers (SQLite FTS3)", escape=True),
    "sqlite_log": Denied("writes the engine log (SQLite)", escape=True),
}


def _prefixed(name: str) -> Denied | None:
    """The DENIED_FUNCTIONS entry matching ``name`` exactly or by its ``*`` pattern."""
    if name in DENIED_FUNCTIONS:
        return DENIED_FUNCTIONS[name]
    return next((denied for key, denied in DENIED_FUNCTIONS.items() if "*" in key and fnmatchcase(name, key)), None)


# --- functions: the allow-lists -------------------------------------------------------------------------------

#: SQLite PRAGMAs that only read, with or without a table/index argument (``PRAGMA table_info(t)``); they are
#: also table-valued functions (``pragma_table_info('t')``).
SQLITE_READ_PRAGMAS = _words("""
table_info table_xinfo table_list index_list index_info index_xinfo foreign_key_list foreign_key_check
database_list collation_list function_list module_list pragma_list compile_options integrity_check quick_check
""")
#: SQLite PRAGMAs that read a setting when given no value (``PRAGMA user_version``); with a value they write.
SQLITE_SETTING_PRAGMAS = _words("""
user_version application_id schema_version page_count page_size freelist_count encoding data_version foreign_keys
journal_mode query_only auto_vacuum cache_size busy_timeout synchronous max_page_count
""")
_SQLITE_NEWER = _words("""
concat concat_ws string_agg octet_length timediff unhex format median percentile percentile_cont
percentile_disc jsonb jsonb_array jsonb_object jsonb_extract jsonb_group_array jsonb_group_object jsonb_insert
jsonb_patch jsonb_remove jsonb_replace jsonb_set json_pretty json_error_position sqlite_offset if
""")
_SQLITE_TABLE_VALUED = _words("json_each json_tree generate_series dbstat") | frozenset(
    f"pragma_{name}" for name in SQLITE_READ_PRAGMAS)

#: DuckDB table functions and PRAGMAs that read the catalog or generate rows.
DUCKDB_READ_TABLE_FUNCTIONS = _words("""
range generate_series unnest json_each json_tree repeat repeat_row test_all_types test_vector_types summary
duckdb_columns duckdb_constraints duckdb_databases duckdb_dependencies duckdb_functions duckdb_indexes
duckdb_keywords duckdb_schemas duckdb_sequences duckdb_tables duckdb_types duckdb_views duckdb_settings
duckdb_extensions duckdb_optimizers duckdb_memory duckdb_temporary_files duckdb_table_sample
duckdb_coordinate_systems duckdb_approx_database_count duckdb_connection_count duckdb_variables
duckdb_prepared_statements pg_timezone_names icu_calendar_names pragma_collations pragma_database_size
pragma_metadata_info pragma_platform pragma_show pragma_storage_info pragma_table_info pragma_user_agent
pragma_version
""")
DUCKDB_READ_PRAGMAS = _words("""
table_info show show_tables show_tables_expanded show_databases database_list database_size storage_info
metadata_info version platform user_agent collations functions extension_versions
""")

#: PostgreSQL STABLE built-ins that are refused (they run SQL text, read tables named by a string, show other
#: sessions or assign transaction ids); the rest of IMMUTABLE and STABLE is allowed.
_POSTGRES_STABLE_REFUSED = _words("""
database_to_xml database_to_xml_and_xmlschema database_to_xmlschema schema_to_xml schema_to_xml_and_xmlschema
schema_to_xmlschema table_to_xml table_to_xml_and_xmlschema table_to_xmlschema pg_stat_get_activity
pg_current_xact_id txid_current pg_config fmgr_c_validator fmgr_internal_validator fmgr_sql_validator
pg_stat_get_wal_receiver pg_stat_get_wal_senders pg_stat_get_subscription
""")
#: PostgreSQL VOLATILE built-ins that only read (the rest of VOLATILE is refused).
_POSTGRES_VOLATILE_READS = _words("""
random random_normal clock_timestamp timeofday gen_random_uuid currval lastval current_query pg_database_size
pg_relation_size pg_table_size pg_indexes_size pg_total_relation_size pg_tablespace_size pg_is_in_recovery
pg_jit_available pg_partition_tree pg_partition_ancestors pg_collation_actual_version
pg_database_collation_actual_version txid_status pg_xact_status pg_notification_queue_usage pg_blocking_pids
pg_safe_snapshot_blocking_pids pg_current_wal_lsn pg_current_wal_insert_lsn pg_current_wal_flush_lsn
pg_is_wal_replay_paused pg_get_wal_replay_pause_state pg_last_wal_receive_lsn pg_last_wal_replay_lsn
pg_last_xact_replay_timestamp pg_sequence_last_value pg_lock_status pg_xact_commit_timestamp
pg_last_committed_xact pg_stat_have_stats pg_get_wal_resource_managers
""")
_POSTGRES_SLOT_READS = _words("pg_get_replication_slots pg_stat_get_replication_slot pg_replication_origin_oid")
_POSTGRES_WRITES = _words("""
nextval setval set_config setseed pg_notify pg_advisory_lock pg_advisory_lock_shared pg_advisory_unlock
pg_advisory_unlock_all pg_advisory_unlock_shared pg_advisory_xact_lock pg_advisory_xact_lock_shared
pg_try_advisory_lock pg_try_advisory_lock_shared pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared
txid_current pg_current_xact_id
""")

ALLOWED_FUNCTIONS: dict[str, frozenset[str]] = {
    "sqlite": (SQLITE_FUNCTIONS | _SQLITE_NEWER | _SQLITE_TABLE_VALUED) - _words("load_extension fts3_tokenizer "
                                                                                 "sqlite_log"),
    "duckdb": (DUCKDB_FUNCTIONS | DUCKDB_VOLATILE | DUCKDB_READ_TABLE_FUNCTIONS)
    - _words("nextval setseed sleep_ms write_log pg_sleep getenv"),
    "postgres": frozenset(
        name for name in ((POSTGRES_IMMUTABLE | POSTGRES_STABLE) - _POSTGRES_STABLE_REFUSED) | _POSTGRES_VOLATILE_READS
        if _prefixed(name) is None or name in _POSTGRES_SLOT_READS),
}
"""Per dialect: the lower-case names of functions and table functions a read-only query may call."""

#: Per dialect: names that change data or session state (run only with ``allow_writes``).
WRITE_FUNCTIONS: dict[str, frozenset[str]] = {
    "sqlite": frozenset(),
    "duckdb": _words("nextval setseed"),
    "postgres": _POSTGRES_WRITES,
}

#: Per dialect: the engine's own names that are neither allowed nor writes (server administration, files...):
#: refused even with ``allow_writes``.
ADMIN_FUNCTIONS: dict[str, frozenset[str]] = {
    "sqlite": SQLITE_FUNCTIONS - ALLOWED_FUNCTIONS["sqlite"],
    "duckdb": (DUCKDB_FUNCTIONS | DUCKDB_VOLATILE | DUCKDB_TABLE_FUNCTIONS | DUCKDB_PRAGMAS)
    - ALLOWED_FUNCTIONS["duckdb"] - WRITE_FUNCTIONS["duckdb"],
    "postgres": (POSTGRES_IMMUTABLE | POSTGRES_STABLE | POSTGRES_VOLATILE)
    - ALLOWED_FUNCTIONS["postgres"] - WRITE_FUNCTIONS["postgres"],
}

#: Qualifiers that name the engine's built-in namespace: ``pg_catalog.lower(x)`` is ``lower(x)``.
BUILTIN_QUALIFIERS: dict[str, frozenset[str]] = {
    "sqlite": frozenset(),
    "duckdb": _words("main system pg_catalog"),
    "postgres": _words("pg_catalog"),
}


def function_policy(name: str, dialect: str, *, table_function: bool = False) -> Denied | None:
    """None when a read-only query may call ``name`` on ``dialect``; otherwise why not.

    ``name`` is the lower-case name after removing a built-in qualifier (see :data:`BUILTIN_QUALIFIERS`).
    """
    duckdb_table_only = (dialect == "duckdb" and table_function and name in DUCKDB_TABLE_FUNCTIONS
                         and name not in DUCKDB_READ_TABLE_FUNCTIONS)  # histogram(): an aggregate, or a table read
    if name in ALLOWED_FUNCTIONS[dialect] and not duckdb_table_only:
        return None
    denied = _prefixed(name)
    if denied is not None:
        if denied.escape or name in WRITE_FUNCTIONS[dialect] or name not in ADMIN_FUNCTIONS[dialect]:
            return denied
        return Denied(denied.reason, escape=True)
    if name in WRITE_FUNCTIONS[dialect]:
        return Denied(f"changes data or session state ({_label(dialect)})")
    if name in ADMIN_FUNCTIONS[dialect] or _engine_namespace(name, dialect, table_function):
        return Denied(f"is not a read-only {_label(dialect)} function (server administration, files or session "
                      "state)", escape=True)
    return Denied(f"is not a known read-only {_label(dialect)} function (user-defined or from an extension)")


def _engine_namespace(name: str, dialect: str, table_function: bool) -> bool:
    """Unknown names the engine reserves for itself are treated as administration (never unlocked)."""
    if dialect == "postgres":
        return name.startswith("pg_")
    if dialect == "duckdb":
        return table_function or name.startswith(("duckdb_", "pragma_"))
    return name.startswith(("sqlite_", "pragma_"))


def _label(dialect: str) -> str:
    return {"sqlite": "SQLite", "duckdb": "DuckDB", "postgres": "PostgreSQL"}.get(dialect, dialect)


# --- catalog relations ----------------------------------------------------------------------------------------

#: PostgreSQL catalog relations refused, with the reason.
POSTGRES_CATALOG_REFUSED: dict[str, str] = {
    "pg_authid": "holds password hashes", "pg_shadow": "holds password hashes",
    "pg_user_mapping": "holds passwords for other servers", "pg_user_mappings": "holds passwords for other servers",
    "pg_subscription": "holds connection strings with passwords",
    "pg_stat_activity": "shows other sessions' queries", "pg_stat_replication": "shows other sessions",
    "pg_stat_wal_receiver": "holds connection strings", "pg_stat_ssl": "shows other sessions' certificates",
    "pg_stat_gssapi": "shows other sessions' principals",
    "pg_hba_file_rules": "reads server configuration files", "pg_ident_file_mappings": "reads server "
    "configuration files", "pg_file_settings": "reads server configuration files",
    "pg_config": "shows the server's build paths", "pg_largeobject": "holds large-object data",
    "pg_statistic": "holds table values outside the table's permissions",
    "pg_statistic_ext_data": "holds table values outside the table's permissions",
    "pg_backend_memory_contexts": "shows server memory", "pg_shmem_allocations": "shows server memory",
}

CATALOG_SCHEMAS: dict[str, frozenset[str]] = {
    "sqlite": frozenset(),
    "duckdb": _words("information_schema pg_catalog"),
    "postgres": _words("information_schema pg_catalog"),
}
"""Per dialect: schemas that hold the engine's catalog."""

_DUCKDB_CATALOG = (DUCKDB_CATALOG_VIEWS - _words("duckdb_logs")) | (
    DUCKDB_READ_TABLE_FUNCTIONS & frozenset(n for n in DUCKDB_TABLE_FUNCTIONS if n.startswith("duckdb_")))
CATALOG_RELATIONS: dict[str, frozenset[str]] = {
    "sqlite": _words("sqlite_master sqlite_schema sqlite_temp_master sqlite_temp_schema sqlite_sequence "
                     "sqlite_stat1 sqlite_stat4 dbstat"),
    "duckdb": _DUCKDB_CATALOG,
    "postgres": POSTGRES_CATALOG_RELATIONS - frozenset(POSTGRES_CATALOG_REFUSED),
}
"""Per dialect: catalog relations a read-only query may read (unqualified or in the catalog schemas)."""


_DUCKDB_CATALOG_REFUSED = (DUCKDB_CATALOG_VIEWS | frozenset(n for n in DUCKDB_TABLE_FUNCTIONS
                                                           if n.startswith("duckdb_"))) - _DUCKDB_CATALOG


def relation_policy(name: str, schema: str | None, dialect: str) -> tuple[bool, Denied | None]:
    """Classify a table reference (lower-case ``name`` and ``schema`` qualifier) that is not a CTE.

    Returns ``(is_catalog, denied)``: ``(False, None)`` for an ordinary table, ``(True, None)`` for a catalog
    relation that may be read, ``(True, Denied)`` for one that may not.
    """
    label = _label(dialect)
    in_catalog_schema = schema in CATALOG_SCHEMAS.get(dialect, ())
    if schema is not None and not in_catalog_schema:
        return False, None
    if dialect == "postgres" and name in POSTGRES_CATALOG_REFUSED:
        return True, Denied(f"{POSTGRES_CATALOG_REFUSED[name]} ({label} catalog)", escape=True)
    if dialect == "duckdb" and name in _DUCKDB_CATALOG_REFUSED:
        return True, Denied((_prefixed(name) or Denied("is not a catalog relation a read-only query may read"))
                            .reason, escape=True)
    if schema == "information_schema" or name in CATALOG_RELATIONS.get(dialect, ()):
        return True, None
    if in_catalog_schema or (dialect == "postgres" and name in POSTGRES_CATALOG_RELATIONS):
        return True, Denied(f"is not a catalog relation a read-only query may read ({label})", escape=True)
    return False, None


# --- statements -------------------------------------------------------------------------------------------------

#: The first keyword of a statement that never runs read-only, with the reason (before parsing, so that a
#: statement sqlglot cannot parse still gets a reason).
STATEMENT_KEYWORDS: dict[str, Denied] = {
    "insert": Denied("INSERT changes data"),
    "replace": Denied("REPLACE INTO changes data"),
    "upsert": Denied("UPSERT changes data"),
    "update": Denied("UPDATE changes data"),
    "delete": Denied("DELETE changes data"),
    "merge": Denied("MERGE changes data"),
    "truncate": Denied("TRUNCATE deletes every row"),
    "drop": Denied("DROP deletes objects"),
    "create": Denied("CREATE creates objects"),
    "alter": Denied("ALTER changes objects"),
    "rename": Denied("RENAME changes objects"),
    "comment": Denied("COMMENT ON changes the catalog"),
    "security": Denied("SECURITY LABEL changes the catalog"),
    "grant": Denied("GRANT changes privileges"),
    "revoke": Denied("REVOKE changes privileges"),
    "reassign": Denied("REASSIGN OWNED changes owners", escape=True),
    "set": Denied("SET changes settings of the pooled session (they would outlive this statement)", escape=True),
    "set role": Denied("SET ROLE changes the privileges of the pooled session", escape=True),
    "set session": Denied("SET SESSION changes the pooled session's settings or user", escape=True),
    "reset": Denied("RESET changes settings of the pooled session (they would outlive this statement)",
                    escape=True),
    "discard": Denied("DISCARD changes session state"),
    "use": Denied("USE switches databases"),
    "begin": Denied("BEGIN controls transactions"),
    "start": Denied("START TRANSACTION controls transactions"),
    "commit": Denied("COMMIT controls transactions"),
    "end": Denied("END controls transactions"),
    "rollback": Denied("ROLLBACK controls transactions"),
    "abort": Denied("ABORT controls transactions"),
    "savepoint": Denied("SAVEPOINT controls transactions"),
    "release": Denied("RELEASE controls transactions"),
    "prepare": Denied("PREPARE creates prepared statements"),
    "execute": Denied("EXECUTE runs stored statements"),
    "deallocate": Denied("DEALLOCATE drops prepared statements"),
    "declare": Denied("DECLARE opens cursors"),
    "fetch": Denied("FETCH reads cursors"),
    "move": Denied("MOVE moves cursors"),
    "close": Denied("CLOSE closes cursors"),
    "lock": Denied("LOCK takes table locks"),
    "unlock": Denied("UNLOCK releases table locks"),
    "analyze": Denied("ANALYZE writes statistics"),
    "analyse": Denied("ANALYZE writes statistics"),
    "refresh": Denied("REFRESH rewrites data"),
    "reindex": Denied("REINDEX rebuilds indexes"),
    "cluster": Denied("CLUSTER rewrites tables"),
    "vacuum": Denied("VACUUM rewrites the database"),
    "vacuum into": Denied("VACUUM INTO writes a copy of the database to a file", escape=True),
    "checkpoint": Denied("CHECKPOINT forces a write of the database to disk (server administration)",
                         escape=True),
    "notify": Denied("NOTIFY sends messages to other sessions"),
    "listen": Denied("LISTEN subscribes the session to notifications"),
    "unlisten": Denied("UNLISTEN changes the session's subscriptions"),
    "call": Denied("CALL runs a procedure or table function; write SELECT * FROM f(...) for a table function"),
    "do": Denied("DO runs procedural code", escape=True),
    "copy": Denied("COPY reads or writes files or programs", escape=True),
    "attach": Denied("ATTACH opens or creates another database file", escape=True),
    "detach": Denied("DETACH changes the attached databases", escape=True),
    "load": Denied("LOAD loads native extensions", escape=True),
    "install": Denied("INSTALL downloads extensions", escape=True),
    "force": Denied("FORCE INSTALL downloads extensions", escape=True),
    "update_extensions": Denied("UPDATE EXTENSIONS downloads extensions", escape=True),
    "export": Denied("EXPORT writes files", escape=True),
    "export database": Denied("EXPORT DATABASE writes files", escape=True),
    "import": Denied("IMPORT reads files", escape=True),
    "import database": Denied("IMPORT DATABASE reads files", escape=True),
    "load data": Denied("LOAD DATA reads files", escape=True),
    "kill": Denied("KILL ends other sessions", escape=True),
    "cache": Denied("CACHE creates objects"),
    "uncache": Denied("UNCACHE drops objects"),
    "msck": Denied("MSCK changes the catalog"),
    "optimize": Denied("OPTIMIZE rewrites data"),
}

#: First keywords of statements that may be read-only (decided after parsing).
READ_KEYWORDS = _words("select with values table from pivot unpivot describe desc show summarize pragma explain (")
