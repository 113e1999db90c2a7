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

def _reasons(table: str, *, escape: bool) -> dict[str, Denied]:
    """``name  reason`` lines (two or more spaces apart) as DENIED_FUNCTIONS entries."""
    rows = (line.split("  ", 1) for line in table.strip().splitlines())
    return {name.strip(): Denied(reason.strip(), escape=escape) for name, reason in rows}


#: Functions refused with a specific reason.  Keys are lower case; ``*`` matches any run of characters.  A name
#: of one engine is refused on every dialect (it does not exist on the others, so nothing honest is lost).  The
#: first table reaches outside the query's data (never run); the second changes data or session state (run only
#: with ``allow_writes``).
DENIED_FUNCTIONS: dict[str, Denied] = {**_reasons("""
pg_sleep*                       stalls the session (PostgreSQL pg_sleep)
pg_read_*                       reads server files (PostgreSQL)
pg_ls_*                         lists server directories (PostgreSQL)
pg_stat_file                    inspects server files (PostgreSQL)
pg_file_*                       writes server files (PostgreSQL adminpack)
pg_logdir_ls                    lists server directories (PostgreSQL adminpack)
pg_current_logfile              names server files (PostgreSQL)
lo_*                            large objects import/export server files (PostgreSQL)
loread                          reads large objects (PostgreSQL)
lowrite                         writes large objects (PostgreSQL)
dblink*                         connects to other databases (PostgreSQL dblink)
query_to_xml*                   runs the SQL text it is given (PostgreSQL)
cursor_to_xml*                  reads an open cursor (PostgreSQL)
table_to_xml*                   reads a table named by a string (PostgreSQL)
schema_to_xml*                  reads every table of a schema (PostgreSQL)
database_to_xml*                reads every table of the database (PostgreSQL)
ts_stat                         runs the SQL text it is given (PostgreSQL)
ts_rewrite                      runs the SQL text it is given (PostgreSQL)
crosstab*                       runs the SQL text it is given (PostgreSQL tablefunc)
pg_stat_statements*             shows other sessions' queries (PostgreSQL)
pg_stat_get_activity            shows other sessions' queries (PostgreSQL)
pg_stat_get_backend_*           shows other sessions (PostgreSQL)
pg_terminate_backend            kills other sessions (PostgreSQL)
pg_cancel_backend               cancels other sessions' queries (PostgreSQL)
pg_stat_reset*                  resets server statistics (PostgreSQL server administration)
pg_*replication_slot*           creates, drops or reads replication slots (PostgreSQL server administration)
pg_logical_slot_*               consumes a replication slot (PostgreSQL server administration)
pg_replication_origin*          changes replication origins (PostgreSQL server administration)
pg_backup_*                     enters or leaves backup mode (PostgreSQL server administration)
pg_start_backup                 enters backup mode (PostgreSQL server administration)
pg_stop_backup                  leaves backup mode (PostgreSQL server administration)
pg_wal_replay_*                 pauses or resumes recovery (PostgreSQL server administration)
pg_reload_conf                  reloads the server configuration (PostgreSQL server administration)
pg_rotate_logfile*              rotates the server log (PostgreSQL server administration)
pg_switch_wal                   switches the WAL file (PostgreSQL server administration)
pg_promote                      promotes a standby (PostgreSQL server administration)
pg_create_restore_point         writes a restore point (PostgreSQL server administration)
pg_logical_emit_message         writes to the WAL (PostgreSQL server administration)
pg_import_system_collations     changes the catalog (PostgreSQL server administration)
pg_log_backend_memory_contexts  writes the server log (PostgreSQL server administration)
pg_export_snapshot              exports a snapshot to other sessions (PostgreSQL)
pg_config                       shows the server's build paths (PostgreSQL)
binary_upgrade_*                changes the catalog (PostgreSQL pg_upgrade)
brin_*summarize*                rewrites an index (PostgreSQL)
gin_clean_pending_list          rewrites an index (PostgreSQL)
read_*                          reads or writes files or URLs (DuckDB read_csv, read_parquet, read_json, read_text...)
parquet_*                       reads or writes files or URLs (DuckDB parquet_scan, parquet_metadata...)
sniff_csv                       reads files (DuckDB)
glob                            lists files (DuckDB glob)
getenv                          reads the server's environment (DuckDB)
iceberg_*                       reads or writes files or URLs (DuckDB iceberg)
delta_scan                      reads or writes files or URLs (DuckDB delta)
sqlite_scan                     reads another database file (DuckDB sqlite)
sqlite_attach                   attaches another database file (DuckDB sqlite)
postgres_*                      connects to other databases (DuckDB postgres)
mysql_*                         connects to other databases (DuckDB mysql)
st_read                         reads files (DuckDB spatial)
http_*                          makes network requests (DuckDB http_client)
query                           runs the SQL text it is given (DuckDB)
query_table                     reads tables named by a string (DuckDB)
histogram                       reads a table named by a string (DuckDB)
histogram_values                reads a table named by a string (DuckDB)
json_execute_serialized_sql     runs serialized SQL (DuckDB)
duckdb_secret*                  lists stored credentials (DuckDB)
which_secret                    looks up stored credentials (DuckDB)
duckdb_logs*                    reads the engine log (DuckDB)
duckdb_log_contexts             reads the engine log (DuckDB)
duckdb_external_file_cache      lists cached files (DuckDB)
duckdb_profiling_settings       changes profiling settings (DuckDB)
enable_*                        changes session settings such as profiling and logging (DuckDB)
disable_*                       changes session settings such as profiling and logging (DuckDB)
truncate_duckdb_logs            deletes the engine log (DuckDB)
checkpoint                      writes the database file (DuckDB server administration)
force_checkpoint                writes the database file (DuckDB server administration)
write_log                       writes the engine log (DuckDB)
sleep_ms                        stalls the session (DuckDB)
arrow_scan*                     reads process memory (DuckDB)
pandas_scan                     reads process memory (DuckDB)
python_map_function             runs Python code (DuckDB)
load_extension                  loads native code (SQLite)
readfile                        reads files (SQLite shell)
writefile                       writes files (SQLite shell)
edit                            starts an editor (SQLite shell)
fsdir                           lists directories (SQLite fileio)
zipfile*                        reads and writes zip files (SQLite zipfile)
fts3_tokenizer                  can install native tokenizers (SQLite FTS3)
sqlite_log                      writes the engine log (SQLite)
""", escape=True), **_reasons("""
set_config                      changes session settings (PostgreSQL)
nextval                         advances a sequence (PostgreSQL, DuckDB)
setval                          sets a sequence (PostgreSQL)
setseed                         changes the session's random seed (PostgreSQL, DuckDB)
txid_current                    assigns a transaction id (PostgreSQL)
pg_current_xact_id              assigns a transaction id (PostgreSQL)
pg_notify                       sends notifications to other sessions (PostgreSQL)
pg_advisory*                    takes locks that outlive the query (PostgreSQL)
pg_try_advisory*                takes locks that outlive the query (PostgreSQL)
""", escape=False)}


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
journal_mode query_only auto_vacuum cache_size busy_timeout synchronous max_page_count read_uncommitted locking_mode
temp_store threads secure_delete recursive_triggers reverse_unordered_selects cell_size_check automatic_index
cache_spill defer_foreign_keys ignore_check_constraints legacy_alter_table mmap_size soft_heap_limit hard_heap_limit
wal_autocheckpoint journal_size_limit analysis_limit trusted_schema full_column_names short_column_names
checkpoint_fullfsync fullfsync default_cache_size count_changes empty_result_callbacks
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
    "pg_stat_statements": "shows other sessions' queries", "pg_stat_statements_info": "shows other sessions' queries",
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
    if dialect == "postgres" and name in POSTGRES_CATALOG_REFUSED:  # in any schema (extensions install anywhere)
        return True, Denied(f"{POSTGRES_CATALOG_REFUSED[name]} ({label} catalog)", escape=True)
    if schema is not None and not in_catalog_schema:
        return False, None
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
STATEMENT_KEYWORDS: dict[str, Denied] = {**_reasons("""
insert             INSERT changes data
replace            REPLACE INTO changes data
upsert             UPSERT changes data
update             UPDATE changes data
delete             DELETE changes data
merge              MERGE changes data
truncate           TRUNCATE deletes every row
drop               DROP deletes objects
create             CREATE creates objects
alter              ALTER changes objects
rename             RENAME changes objects
comment            COMMENT ON changes the catalog
security           SECURITY LABEL changes the catalog
grant              GRANT changes privileges
revoke             REVOKE changes privileges
discard            DISCARD changes session state
use                USE switches databases
begin              BEGIN controls transactions
start              START TRANSACTION controls transactions
commit             COMMIT controls transactions
end                END controls transactions
rollback           ROLLBACK controls transactions
abort              ABORT controls transactions
savepoint          SAVEPOINT controls transactions
release            RELEASE controls transactions
prepare            PREPARE creates prepared statements
execute            EXECUTE runs stored statements
deallocate         DEALLOCATE drops prepared statements
declare            DECLARE opens cursors
fetch              FETCH reads cursors
move               MOVE moves cursors
close              CLOSE closes cursors
lock               LOCK takes table locks
unlock             UNLOCK releases table locks
analyze            ANALYZE writes statistics
analyse            ANALYZE writes statistics
refresh            REFRESH rewrites data
reindex            REINDEX rebuilds indexes
cluster            CLUSTER rewrites tables
vacuum             VACUUM rewrites the database
notify             NOTIFY sends messages to other sessions
listen             LISTEN subscribes the session to notifications
unlisten           UNLISTEN changes the session's subscriptions
call               CALL runs a procedure or table function; write SELECT * FROM f(...) for a table function
cache              CACHE creates objects
uncache            UNCACHE drops objects
msck               MSCK changes the catalog
optimize           OPTIMIZE rewrites data
""", escape=False), **_reasons("""
alter system               ALTER SYSTEM rewrites the server configuration (server administration)
create role                CREATE ROLE changes the server's roles (server administration)
create user                CREATE USER changes the server's roles (server administration)
alter role                 ALTER ROLE changes the server's roles (server administration)
alter user                 ALTER USER changes the server's roles (server administration)
drop role                  DROP ROLE changes the server's roles (server administration)
drop user                  DROP USER changes the server's roles (server administration)
create database            CREATE DATABASE changes the server (server administration)
alter database             ALTER DATABASE changes the server (server administration)
drop database              DROP DATABASE deletes a whole database (server administration)
create extension           CREATE EXTENSION installs code into the server (server administration)
alter extension            ALTER EXTENSION changes code in the server (server administration)
drop extension             DROP EXTENSION removes code from the server (server administration)
create tablespace          CREATE TABLESPACE writes server directories (server administration)
drop tablespace            DROP TABLESPACE changes server directories (server administration)
create subscription        CREATE SUBSCRIPTION connects to other servers (server administration)
alter subscription         ALTER SUBSCRIPTION connects to other servers (server administration)
create publication         CREATE PUBLICATION changes replication (server administration)
create server              CREATE SERVER connects to other servers (server administration)
create foreign             CREATE FOREIGN ... reaches other servers (server administration)
create language            CREATE LANGUAGE installs code into the server (server administration)
create event               CREATE EVENT TRIGGER runs code on every DDL (server administration)
create secret              CREATE SECRET stores credentials (DuckDB)
create persistent          CREATE PERSISTENT SECRET stores credentials on disk (DuckDB)
drop secret                DROP SECRET changes stored credentials (DuckDB)
reassign           REASSIGN OWNED changes owners
set                SET changes settings of the pooled session (they would outlive this statement)
set role           SET ROLE changes the privileges of the pooled session
set session        SET SESSION changes the pooled session's settings or user
reset              RESET changes settings of the pooled session (they would outlive this statement)
vacuum into        VACUUM INTO writes a copy of the database to a file
checkpoint         CHECKPOINT forces a write of the database to disk (server administration)
do                 DO runs procedural code
copy               COPY reads or writes files or programs
attach             ATTACH opens or creates another database file
detach             DETACH changes the attached databases
load               LOAD loads native extensions
install            INSTALL downloads extensions
force              FORCE INSTALL downloads extensions
update_extensions  UPDATE EXTENSIONS downloads extensions
export             EXPORT writes files
export database    EXPORT DATABASE writes files
import             IMPORT reads files
import database    IMPORT DATABASE reads files
load data          LOAD DATA reads files
kill               KILL ends other sessions
""", escape=True)}


#: First keywords of statements that may be read-only (decided after parsing).
READ_KEYWORDS = _words("select with values table from pivot unpivot describe desc show summarize pragma explain (")
