//! Read a snapshot from a live database: catalog queries for the header, one streaming,
//! key-ordered query per table for the rows. The server renders every value as JSON
//! (`row_to_json`), so types map the way PostgreSQL maps them, losslessly for numerics.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures_util::StreamExt;

use serde_json::{Map, Value};
use tokio_postgres::{Client, RowStream};

use super::{Header, Row, RowText, Source};
use crate::error::{Error, Result, db_message};

/// How a table's rows are keyed in the snapshot (README "Row keys").
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRule {
    /// Primary key columns, or else the columns of the first (by name) unique, non-partial,
    /// all-NOT NULL column index.
    Columns(Vec<String>),
    /// No such key: rows are keyed by a hash of their content plus an occurrence number.
    Content,
}

#[derive(Debug, Clone)]
pub struct Table {
    /// `schema.table`, unquoted.
    pub name: String,
    pub schema: String,
    pub table: String,
    pub key: KeyRule,
    /// Partitioned parents include their partitions' rows; plain tables use ONLY.
    pub partitioned: bool,
}

const USER_NAMESPACE: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname !~ '^pg_(toast|temp)'";

fn not_extension_member(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
         AND d.objid = {oid} AND d.deptype = 'e')"
    )
}

fn query_error(what: &str, e: tokio_postgres::Error) -> Error {
    Error::Server(format!("reading {what}: {}", db_message(&e)))
}

/// Every user table (not partitions, not extension members), in name order.
pub async fn tables(client: &Client) -> Result<Vec<Table>> {
    let sql = format!(
        "SELECT n.nspname, c.relname, c.relkind = 'p',
           (SELECT array_agg(a.attname::text ORDER BY k.ord)
              FROM pg_index i
              CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = c.oid AND i.indisprimary),
           (SELECT cols FROM (
              SELECT ic.relname, array_agg(a.attname::text ORDER BY k.ord) AS cols,
                     bool_and(a.attnotnull) AS notnull
                FROM pg_index i
                JOIN pg_class ic ON ic.oid = i.indexrelid
                CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
                JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
               WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL
                 AND i.indexprs IS NULL AND i.indisvalid
               GROUP BY ic.relname) u
             WHERE u.notnull ORDER BY u.relname COLLATE \"C\" LIMIT 1)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND {USER_NAMESPACE}
           AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| query_error("the table list", e))?;
    let mut tables: Vec<Table> = rows
        .iter()
        .map(|r| {
            let schema: String = r.get(0);
            let table: String = r.get(1);
            let pk: Option<Vec<String>> = r.get(3);
            let unique: Option<Vec<String>> = r.get(4);
            Table {
                name: format!("{schema}.{table}"),
                schema,
                table,
                partitioned: r.get(2),
                key: match pk.or(unique) {
                    Some(cols) => KeyRule::Columns(cols),
                    None => KeyRule::Content,
                },
            }
        })
        .collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(tables)
}

pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Table {
    fn relation_sql(&self) -> String {
        let only = if self.partitioned { "" } else { "ONLY " };
        format!(
            "{only}{}.{} t",
            quote_ident(&self.schema),
            quote_ident(&self.table)
        )
    }

    /// The key as SQL text (`None` for content-keyed tables).
    fn key_sql(&self) -> Option<String> {
        match &self.key {
            KeyRule::Columns(cols) if cols.len() == 1 => {
                Some(format!("(t.{})::text", quote_ident(&cols[0])))
            }
            KeyRule::Columns(cols) => {
                let list: Vec<String> = cols
                    .iter()
                    .map(|c| format!("t.{}", quote_ident(c)))
                    .collect();
                Some(format!("json_build_array({})::text", list.join(", ")))
            }
            KeyRule::Content => None,
        }
    }

    /// SQL returning (key text, row json text) in key byte order.
    fn rows_sql(&self) -> String {
        self.range_sql(None, None)
    }

    /// `rows_sql` for the rows with one of these keys only (`Narrowed`, `text_array`); a
    /// keyed table.
    fn keys_sql(&self, keys: &str) -> String {
        let key = self.key_sql().expect("a keyed table (written_keys)");
        format!(
            "SELECT k, r FROM (SELECT {key} AS k, row_to_json(t.*)::text AS r FROM {} \
              WHERE {key} = ANY({keys})) s ORDER BY k COLLATE \"C\"",
            self.relation_sql()
        )
    }

    /// `rows_sql` for the keys in `[lo, hi)` (byte order; an open end is unbounded): one
    /// part of a table read in parallel (`Parallel`). Only for tables with a key and no
    /// partitions.
    fn range_sql(&self, lo: Option<&str>, hi: Option<&str>) -> String {
        let from = self.relation_sql();
        if let (Some(key), false) = (self.key_sql(), lo.is_none() && hi.is_none()) {
            let mut bounds = Vec::new();
            if let Some(lo) = lo {
                bounds.push(format!("{key} COLLATE \"C\" >= {}", literal(lo)));
            }
            if let Some(hi) = hi {
                bounds.push(format!("{key} COLLATE \"C\" < {}", literal(hi)));
            }
            let filter = bounds.join(" AND ");
            return format!(
                "SELECT s.k, row_to_json(t.*)::text AS r \
                   FROM (SELECT t.ctid AS c, {key} AS k FROM {from} WHERE {filter} ORDER BY {key} COLLATE \"C\") s \
                   JOIN {from} ON t.ctid = s.c \
                  ORDER BY s.k COLLATE \"C\""
            );
        }
        let key = match &self.key {
            KeyRule::Columns(cols) if cols.len() == 1 => {
                format!("(t.{})::text", quote_ident(&cols[0]))
            }
            KeyRule::Columns(cols) => {
                let list: Vec<String> = cols
                    .iter()
                    .map(|c| format!("t.{}", quote_ident(c)))
                    .collect();
                format!("json_build_array({})::text", list.join(", "))
            }
            KeyRule::Content => {
                return format!(
                    "SELECT k, r FROM (
                       SELECT md5(r) || '-' || row_number() OVER (PARTITION BY r) AS k, r
                         FROM (SELECT row_to_json(t.*)::text AS r FROM {from}) s) keyed
                      ORDER BY k COLLATE \"C\""
                );
            }
        };
        if self.partitioned {
            // A ctid names a row only within one partition: sort the rows themselves.
            return format!(
                "SELECT k, r FROM (SELECT {key} AS k, row_to_json(t.*)::text AS r FROM {from}) keyed \
                 ORDER BY k COLLATE \"C\""
            );
        }
        // Sort only (key, ctid), then fetch each row by ctid as the sorted keys stream out:
        // rows flow from the first one on, and the server never sorts the rows' JSON (sorting
        // it held back the first row for as long as the whole table took: 2.5 s at 100k rows).
        // With hash and merge joins off (`STREAMING`), the plan is a nested loop over a TID
        // scan, which keeps the sort's order, so the final ORDER BY costs nothing.
        format!(
            "SELECT s.k, row_to_json(t.*)::text AS r \
               FROM (SELECT t.ctid AS c, {key} AS k FROM {from} ORDER BY {key} COLLATE \"C\") s \
               JOIN {from} ON t.ctid = s.c \
              ORDER BY s.k COLLATE \"C\""
        )
    }
}

/// Rows of a table (`None`) and non-NULL values of columns (`Some(column)`), in one scan, by the
/// table's snapshot name (`schema.table`); the table's own rows only (`ONLY`: partitions count
/// for themselves). None when there is no such table.
pub async fn counts(
    client: &Client,
    table: &str,
    columns: &[Option<&str>],
) -> Result<Option<Vec<u64>>> {
    let found = client
        .query_opt(
            "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname || '.' || c.relname = $1 AND c.relkind IN ('r', 'p')
              LIMIT 1",
            &[&table],
        )
        .await
        .map_err(|e| query_error("the table list", e))?;
    let Some(row) = found else {
        return Ok(None);
    };
    let relation: String = row.get(0);
    let what: Vec<String> = columns
        .iter()
        .map(|c| match c {
            Some(c) => format!("count({})", quote_ident(c)),
            None => "count(*)".into(),
        })
        .collect();
    let row = client
        .query_one(
            &format!("SELECT {} FROM ONLY {relation}", what.join(", ")),
            &[],
        )
        .await
        .map_err(|e| query_error(&format!("the size of {table}"), e))?;
    Ok(Some(
        (0..columns.len())
            .map(|i| row.get::<_, i64>(i) as u64)
            .collect(),
    ))
}

/// The snapshot header: alembic revision and schema.
pub async fn header(client: &Client) -> Result<Header> {
    Ok(Header {
        alembic_version: alembic_version(client).await?,
        schema: schema(client).await?,
    })
}

/// Where a run reads the revision: a tool's bookkeeping table, the user's query, or nowhere.
pub enum RevisionSource<'a> {
    Tool(crate::tool::RevisionQuery, Option<&'a str>),
    Sql(&'a str),
    None,
}

/// The schema holding table `name` (first `public`, then by name), if any user schema has it.
async fn schema_of(client: &Client, name: &str) -> Result<Option<String>> {
    let sql = format!(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relname = $1 AND c.relkind IN ('r', 'p') AND {USER_NAMESPACE}
          ORDER BY n.nspname = 'public' DESC, n.nspname LIMIT 1"
    );
    let row = client
        .query_opt(&sql, &[&name])
        .await
        .map_err(|e| query_error(name, e))?;
    Ok(row.map(|r| r.get(0)))
}

/// The database's current revision(s), sorted: the rows (first column, as text) of the
/// tool's query or the user's, run in a read-only transaction. `null` when nothing says: no
/// source, or the tool's bookkeeping table is not there; `[]` at the tool's base.
pub async fn revision(client: &Client, source: &RevisionSource<'_>) -> Result<Value> {
    let (sql, what) = match source {
        RevisionSource::None => return Ok(Value::Null),
        RevisionSource::Sql(sql) => (sql.to_string(), "--revision-sql"),
        RevisionSource::Tool(q, app) => {
            let Some(schema) = schema_of(client, q.table).await? else {
                return Ok(Value::Null);
            };
            let table = format!("{}.{}", quote_ident(&schema), quote_ident(q.table));
            let app = app
                .map(|a| format!("'{}'", a.replace('\'', "''")))
                .unwrap_or_default();
            (
                q.sql.replace("{table}", &table).replace("{app}", &app),
                q.table,
            )
        }
    };
    let err = |e: tokio_postgres::Error| match source {
        RevisionSource::Sql(_) => Error::Config(format!(
            "--revision-sql failed: {}; it must be a query returning the revision in its first column",
            db_message(&e)
        )),
        _ => query_error(what, e),
    };
    client.batch_execute("BEGIN READ ONLY").await.map_err(err)?;
    let result = client.simple_query(&sql).await;
    client.batch_execute("ROLLBACK").await.map_err(err)?;
    let mut revs: Vec<String> = result
        .map_err(err)?
        .iter()
        .filter_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(String::from),
            _ => None,
        })
        .collect();
    revs.sort();
    Ok(Value::Array(revs.into_iter().map(Value::String).collect()))
}

/// The migration tools whose bookkeeping table the database has (README "Migration tools").
/// `schema_migrations` is Rails' when `ar_internal_metadata` exists or its `version` is text,
/// golang-migrate's when it has a `dirty` column.
pub async fn detect_tools(client: &Client) -> Result<Vec<crate::tool::Tool>> {
    use crate::tool::Tool;
    let sql = format!(
        "SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                 AND a.attname = 'dirty' AND NOT a.attisdropped)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.relkind IN ('r', 'p') AND {USER_NAMESPACE} AND c.relname = ANY($1)"
    );
    let names: Vec<&str> = Tool::DETECTABLE
        .iter()
        .flat_map(|t| t.bookkeeping().iter().copied())
        .collect();
    let rows = client
        .query(&sql, &[&names])
        .await
        .map_err(|e| query_error("bookkeeping tables", e))?;
    let has = |name: &str| rows.iter().any(|r| r.get::<_, &str>(0) == name);
    let dirty = rows
        .iter()
        .any(|r| r.get::<_, &str>(0) == "schema_migrations" && r.get::<_, bool>(1));
    Ok(Tool::DETECTABLE
        .iter()
        .copied()
        .filter(|t| match t {
            Tool::Rails => has("schema_migrations") && (has("ar_internal_metadata") || !dirty),
            Tool::GolangMigrate => {
                has("schema_migrations") && dirty && !has("ar_internal_metadata")
            }
            t => has(t.bookkeeping()[0]),
        })
        .collect())
}

async fn alembic_version(client: &Client) -> Result<Value> {
    let Some(schema) = schema_of(client, "alembic_version").await? else {
        return Ok(Value::Null);
    };
    let sql = format!(
        "SELECT version_num::text FROM {}.alembic_version ORDER BY version_num::text COLLATE \"C\"",
        quote_ident(&schema)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| query_error("alembic_version", e))?;
    Ok(Value::Array(
        rows.iter().map(|r| Value::String(r.get(0))).collect(),
    ))
}

/// Catalog queries, each returning (path under /schema, value as JSON text).
fn schema_queries() -> Vec<String> {
    let table = "n.nspname || '.' || c.relname";
    let user_tables = format!(
        "c.relkind IN ('r', 'p') AND {USER_NAMESPACE} AND {}",
        not_extension_member("pg_class", "c.oid")
    );
    vec![
        format!(
            "SELECT ARRAY['schemas', n.nspname::text], 'true' FROM pg_namespace n
              WHERE {USER_NAMESPACE} AND {}",
            not_extension_member("pg_namespace", "n.oid")
        ),
        "SELECT ARRAY['extensions', extname::text], to_json(extversion)::text
           FROM pg_extension WHERE extname <> 'plpgsql'"
            .to_string(),
        format!(
            "SELECT ARRAY['tables', {table}],
                    '{{\"columns\":{{}},\"constraints\":{{}},\"indexes\":{{}},\"triggers\":{{}}}}'
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {user_tables}"
        ),
        format!(
            "SELECT ARRAY['tables', {table}, 'columns', a.attname::text],
                    json_strip_nulls(json_build_object(
                      'type', format_type(a.atttypid, a.atttypmod),
                      'nullable', NOT a.attnotnull,
                      'default', pg_get_expr(d.adbin, d.adrelid),
                      'identity', NULLIF(a.attidentity::text, ''),
                      'generated', NULLIF(a.attgenerated::text, '')))::text
               FROM pg_attribute a
               JOIN pg_class c ON c.oid = a.attrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attnum > 0 AND NOT a.attisdropped AND {user_tables}"
        ),
        format!(
            "SELECT ARRAY['tables', {table}, 'constraints', co.conname::text],
                    json_build_object(
                      'type', CASE co.contype WHEN 'c' THEN 'check' WHEN 'f' THEN 'foreign key'
                              WHEN 'p' THEN 'primary key' WHEN 'u' THEN 'unique'
                              WHEN 'x' THEN 'exclusion' WHEN 't' THEN 'trigger'
                              ELSE co.contype::text END,
                      'definition', pg_get_constraintdef(co.oid))::text
               FROM pg_constraint co
               JOIN pg_class c ON c.oid = co.conrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE co.contype <> 'n' AND {user_tables}"
        ),
        format!(
            "SELECT ARRAY['tables', {table}, 'indexes', ic.relname::text],
                    to_json(pg_get_indexdef(i.indexrelid))::text
               FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid
               JOIN pg_class c ON c.oid = i.indrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE {user_tables}"
        ),
        format!(
            "SELECT ARRAY['tables', {table}, 'triggers', tg.tgname::text],
                    to_json(pg_get_triggerdef(tg.oid))::text
               FROM pg_trigger tg
               JOIN pg_class c ON c.oid = tg.tgrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE NOT tg.tgisinternal AND {user_tables}"
        ),
        format!(
            "SELECT ARRAY['sequences', n.nspname || '.' || c.relname],
                    json_build_object('type', format_type(s.seqtypid, NULL),
                      'start', s.seqstart, 'increment', s.seqincrement, 'min', s.seqmin,
                      'max', s.seqmax, 'cycle', s.seqcycle)::text
               FROM pg_sequence s
               JOIN pg_class c ON c.oid = s.seqrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE {USER_NAMESPACE} AND {}",
            not_extension_member("pg_class", "c.oid")
        ),
        format!(
            "SELECT ARRAY['enums', n.nspname || '.' || t.typname],
                    json_agg(e.enumlabel ORDER BY e.enumsortorder)::text
               FROM pg_type t
               JOIN pg_namespace n ON n.oid = t.typnamespace
               JOIN pg_enum e ON e.enumtypid = t.oid
              WHERE {USER_NAMESPACE} AND {}
              GROUP BY n.nspname, t.typname",
            not_extension_member("pg_type", "t.oid")
        ),
        format!(
            "SELECT ARRAY['views', n.nspname || '.' || c.relname],
                    json_build_object('materialized', c.relkind = 'm',
                      'definition', pg_get_viewdef(c.oid))::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('v', 'm') AND {USER_NAMESPACE} AND {}",
            not_extension_member("pg_class", "c.oid")
        ),
        format!(
            "SELECT ARRAY['functions', n.nspname || '.' || p.proname || '('
                            || pg_get_function_identity_arguments(p.oid) || ')'],
                    to_json(pg_get_functiondef(p.oid))::text
               FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
              WHERE p.prokind IN ('f', 'p') AND {USER_NAMESPACE} AND {}",
            not_extension_member("pg_proc", "p.oid")
        ),
    ]
}

async fn schema(client: &Client) -> Result<Value> {
    let mut root = Map::new();
    for section in [
        "schemas",
        "extensions",
        "tables",
        "sequences",
        "enums",
        "views",
        "functions",
    ] {
        root.insert(section.to_string(), Value::Object(Map::new()));
    }
    let mut root = Value::Object(root);
    for sql in schema_queries() {
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(|e| query_error("the schema", e))?;
        for row in rows {
            let path: Vec<String> = row.get(0);
            let text: &str = row.get(1);
            let value: Value = serde_json::from_str(text)
                .map_err(|e| Error::Server(format!("catalog value is not JSON: {e}")))?;
            insert_at(&mut root, &path, value);
        }
    }
    Ok(root)
}

/// Set `value` at `path`, creating objects on the way.
fn insert_at(root: &mut Value, path: &[String], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = root;
    for token in parents {
        let Value::Object(map) = node else { return };
        node = map
            .entry(token.clone())
            .or_insert_with(|| Value::Object(Map::new()));
    }
    if let Value::Object(map) = node {
        map.insert(last.clone(), value);
    }
}

/// What says whether a table was written, per table: its OID and file, its write counters
/// (`pg_stat_user_tables`: inserts, updates (HOT ones too), deletes), and its columns (name,
/// type, generation, default). A table is listed only when every column is of a base type
/// (or an array of one): an enum, domain, composite or range can change how a value reads
/// (`ALTER TYPE ... RENAME VALUE`) without writing a row. The `""` entry is database-wide:
/// extension versions and the database's settings, whose change can also alter how values
/// read. `None` when the counters cannot be trusted: before PostgreSQL 15 (a stats collector
/// that may drop messages and lags), with `track_counts` off, or while another session is
/// connected (a lingering one may hold writes it has not yet counted). README "Untouched
/// tables".
pub async fn table_marks(client: &Client) -> Result<Option<BTreeMap<String, Mark>>> {
    let ok: bool = client
        .query_one(
            "SELECT current_setting('server_version_num')::int >= 150000
                    AND current_setting('track_counts')::bool
                    AND NOT EXISTS (SELECT 1 FROM pg_stat_activity
                                     WHERE datname = current_database()
                                       AND pid <> pg_backend_pid())",
            &[],
        )
        .await
        .map_err(|e| query_error("table write counters", e))?
        .get(0);
    if !ok {
        return Ok(None);
    }
    let sql = format!(
        "SELECT n.nspname || '.' || c.relname,
                concat_ws('|', c.relfilenode, s.n_tup_ins, s.n_tup_upd, s.n_tup_del),
                concat_ws('|', c.oid,
                  (SELECT string_agg(concat_ws(' ', a.attnum, a.attname,
                                       format_type(a.atttypid, a.atttypmod), a.attgenerated,
                                       pg_get_expr(d.adbin, d.adrelid)), ',' ORDER BY a.attnum)
                     FROM pg_attribute a
                     LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
                    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped))
           FROM pg_class c
           JOIN pg_namespace n ON n.oid = c.relnamespace
           JOIN pg_stat_user_tables s ON s.relid = c.oid
          WHERE c.relkind = 'r' AND NOT c.relispartition AND NOT c.relhassubclass
            AND {USER_NAMESPACE}
            AND NOT EXISTS (
                SELECT 1 FROM pg_attribute a
                  JOIN pg_type t ON t.oid = a.atttypid
                  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typelem <> 0
                 WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
                   AND (t.typtype <> 'b' OR (e.oid IS NOT NULL AND e.typtype <> 'b')))
         UNION ALL
         SELECT '', '', concat_ws('|',
                  (SELECT string_agg(extname || ' ' || extversion, ',' ORDER BY extname)
                     FROM pg_extension),
                  (SELECT string_agg(array_to_string(setconfig, ','), ';' ORDER BY setrole)
                     FROM pg_db_role_setting
                    WHERE setdatabase = (SELECT oid FROM pg_database
                                          WHERE datname = current_database())))"
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(|e| query_error("table write counters", e))?;
    Ok(Some(
        rows.iter()
            .map(|r| {
                let mark = Mark {
                    writes: r.get(1),
                    shape: r.get(2),
                };
                (r.get::<_, String>(0), mark)
            })
            .collect(),
    ))
}

/// One table's mark (`table_marks`); the `""` entry has only a shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    /// The file and the insert, update and delete counters: what a write changes.
    pub writes: String,
    /// The OID and the columns (name, type, generation, default): what decides how an
    /// unwritten row reads.
    pub shape: String,
}

/// The next transaction id the server will assign (`pg_current_snapshot`'s xmax, 64 bits with
/// its epoch). Every tuple written after this moment, in any database of the server, carries
/// an xmin at or past it (`written_keys`).
pub async fn next_xid(client: &Client) -> Result<u64> {
    let next: i64 = client
        .query_one(
            "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint",
            &[],
        )
        .await
        .map_err(|e| query_error("the next transaction id", e))?
        .get(0);
    Ok(next as u64)
}

/// "Written at or after transaction id `since`" (`next_xid`) as a condition on a tuple's
/// 32-bit `xmin`, wraparound included: the xmin lies in the 2^31 ids from `since` on, the half
/// of the id circle PostgreSQL itself calls the future of `since`. A frozen tuple keeps its
/// original xmin (PostgreSQL 9.4+), so one written since still matches; an older tuple matches
/// only when its xmin is from more than 2^31 ids ago, and is then read and compared like a
/// written one: a match costs a read, never a wrong answer.
fn written_sql(since: u64) -> String {
    format!(
        "((t.xmin::text::bigint - {}) & 4294967295) < 2147483648",
        since & 0xFFFF_FFFF
    )
}

/// A table's rows written since transaction id `since`: how many rows it has, and the keys of
/// the written ones (in key byte order) when there are at most `cap(rows)` of them (`None`: not
/// at all). None for a table without a key.
pub async fn written_keys(
    client: &Client,
    table: &Table,
    since: u64,
    cap: impl Fn(u64) -> Option<u64>,
) -> Result<Option<(u64, Vec<String>)>> {
    let Some(key) = table.key_sql() else {
        return Ok(None);
    };
    let from = table.relation_sql();
    let written = written_sql(since);
    let row = client
        .query_one(
            &format!("SELECT count(*), count(*) FILTER (WHERE {written}) FROM {from}"),
            &[],
        )
        .await
        .map_err(|e| query_error(&format!("rows written in {}", table.name), e))?;
    let (rows, n) = (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64);
    if cap(rows).is_none_or(|cap| n > cap) {
        return Ok(None);
    }
    let keys = client
        .query(
            &format!(
                "SELECT k FROM (SELECT {key} AS k FROM {from} WHERE {written}) s ORDER BY k COLLATE \"C\""
            ),
            &[],
        )
        .await
        .map_err(|e| query_error(&format!("keys written in {}", table.name), e))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(Some((rows, keys)))
}

/// A table's rows, and how many of them have one of `keys` (`text_array`).
pub async fn count_keys(client: &Client, table: &Table, keys: &str) -> Result<(u64, u64)> {
    let key = table.key_sql().expect("a keyed table (written_keys)");
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE {key} = ANY({keys})) FROM {}",
                table.relation_sql()
            ),
            &[],
        )
        .await
        .map_err(|e| query_error(&format!("rows of {}", table.name), e))?;
    Ok((row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64))
}

/// Strings as an SQL `text[]` literal (a constant: PostgreSQL 14+ looks `= ANY` up in a hash).
pub fn text_array(items: &[String]) -> String {
    let elements: Vec<String> = items
        .iter()
        .map(|k| format!("\"{}\"", k.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!(
        "{}::text[]",
        literal(&format!("{{{}}}", elements.join(",")))
    )
}

/// Which rows of a table a `DbSource` reads when only some were written (`DbSource::narrow`):
/// these keys; the table's other rows are equal on both sides and only counted.
#[derive(Debug, Clone)]
pub struct Narrowed {
    /// The keys as one SQL `text[]` constant (`text_array`), built once for every query.
    pub keys: std::sync::Arc<String>,
    /// The rows not read (the same number on both sides).
    pub unread: u64,
}

/// Planner settings for `rows_sql`'s streaming plan, set once per `DbSource` connection (after
/// the header's catalog queries, which want hash joins).
const STREAMING: &str = "SET enable_hashjoin = off; SET enable_mergejoin = off";

/// A string as an SQL literal (standard_conforming_strings, PostgreSQL's default since 9.1).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Reading big tables in key ranges over several connections at once (`--jobs`): each range's
/// rows are read by a task of its own into a bounded channel, and handed on in range order, so
/// the stream stays in key order and memory stays bounded.
pub struct Parallel {
    /// Connections beside the source's own (jobs - 1 of them), with `STREAMING` set.
    clients: Vec<std::sync::Arc<Client>>,
    /// Tables with fewer (estimated) rows are read in one piece.
    min_rows: u64,
}

/// Rows each range's task may read ahead of the diff.
const READ_AHEAD: usize = 2048;

impl Parallel {
    /// `clients` are extra connections to the same database; they are set up here.
    pub async fn new(clients: Vec<Client>, min_rows: u64) -> Result<Parallel> {
        for client in &clients {
            client
                .batch_execute(STREAMING)
                .await
                .map_err(|e| query_error("planner settings", e))?;
        }
        Ok(Parallel {
            clients: clients.into_iter().map(std::sync::Arc::new).collect(),
            min_rows,
        })
    }

    fn jobs(&self) -> usize {
        self.clients.len() + 1
    }
}

/// One range's rows as its task sends them.
type RangeRows = tokio::sync::mpsc::Receiver<std::result::Result<(String, String), String>>;

/// Rows of the given tables, streamed one table at a time in key order.
pub struct DbSource<'a> {
    client: &'a Client,
    streaming: bool,
    tables: std::vec::IntoIter<Table>,
    /// The current table, until its rows are asked for (then its stream is opened).
    pending: Option<Table>,
    current: Option<(String, Pin<Box<RowStream>>)>,
    header: Option<Header>,
    /// Tables known not to have been written (`settled_rows` counts them instead).
    settled: std::collections::BTreeSet<String>,
    /// Tables of which only some rows were written: only those are read.
    narrowed: BTreeMap<String, Narrowed>,
    /// The current table's rows not read, when it is narrowed.
    unread: Option<u64>,
    parallel: Option<Parallel>,
    /// The current table's ranges still to hand on, when it is read in parallel.
    ranges: std::collections::VecDeque<RangeRows>,
}

impl<'a> DbSource<'a> {
    pub fn new(client: &'a Client, tables: Vec<Table>) -> Self {
        DbSource {
            client,
            streaming: false,
            tables: tables.into_iter(),
            pending: None,
            current: None,
            header: None,
            settled: Default::default(),
            narrowed: Default::default(),
            unread: None,
            parallel: None,
            ranges: Default::default(),
        }
    }

    /// Read big tables in key ranges over these connections too (`--jobs`).
    pub fn parallel(mut self, parallel: Option<Parallel>) -> Self {
        self.parallel = parallel.filter(|p| !p.clients.is_empty());
        self
    }

    /// Up to `jobs - 1` split points of `table`'s keys, from a sample of about 10 000 rows;
    /// none when the table is small, keyless or partitioned.
    async fn split_points(&self, table: &Table, jobs: usize, min_rows: u64) -> Result<Vec<String>> {
        let Some(key) = table.key_sql() else {
            return Ok(Vec::new());
        };
        if table.partitioned {
            return Ok(Vec::new());
        }
        let estimate: i64 = self
            .client
            .query_one(
                "SELECT greatest(c.reltuples::bigint, pg_relation_size(c.oid) / 100)
                   FROM pg_class c WHERE c.oid = (quote_ident($1) || '.' || quote_ident($2))::regclass",
                &[&table.schema, &table.table],
            )
            .await
            .map_err(|e| query_error(&format!("size of {}", table.name), e))?
            .get(0);
        if estimate.max(0) as u64 <= min_rows.max(1) {
            return Ok(Vec::new());
        }
        let percent = (1_000_000.0 / estimate as f64).clamp(0.01, 100.0);
        let sql = format!(
            "SELECT k FROM (SELECT {key} AS k FROM {} TABLESAMPLE SYSTEM ({percent}) REPEATABLE (0)) s \
              ORDER BY k COLLATE \"C\"",
            table.relation_sql()
        );
        let sample: Vec<String> = self
            .client
            .query(&sql, &[])
            .await
            .map_err(|e| query_error(&format!("key sample of {}", table.name), e))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut points: Vec<String> = (1..jobs)
            .filter_map(|i| sample.get(i * sample.len() / jobs).cloned())
            .collect();
        points.dedup();
        Ok(points)
    }

    /// Open `table` as ranges read at once over the parallel connections, when it is big
    /// enough; false when it is read in one piece.
    async fn open_ranges(&mut self, table: &Table) -> Result<bool> {
        let Some(parallel) = &self.parallel else {
            return Ok(false);
        };
        let points = self
            .split_points(table, parallel.jobs(), parallel.min_rows)
            .await?;
        if points.is_empty() {
            return Ok(false);
        }
        crate::console::progress(format!(
            "reading {} in {} key ranges at once",
            table.name,
            points.len() + 1
        ));
        let bounds: Vec<(Option<&str>, Option<&str>)> = (0..=points.len())
            .map(|i| {
                (
                    i.checked_sub(1).map(|j| points[j].as_str()),
                    points.get(i).map(String::as_str),
                )
            })
            .collect();
        for (i, (lo, hi)) in bounds.into_iter().enumerate() {
            let sql = table.range_sql(lo, hi);
            let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
            let name = table.name.clone();
            if i == 0 {
                // The first range on the source's own connection (its planner settings set).
                let params: [&str; 0] = [];
                let stream = self
                    .client
                    .query_raw(&sql, params)
                    .await
                    .map_err(|e| query_error(&format!("rows of {name}"), e))?;
                tokio::spawn(forward(Box::pin(stream), tx, name));
            } else {
                let client = parallel.clients[i - 1].clone();
                tokio::spawn(async move {
                    let params: [&str; 0] = [];
                    match client.query_raw(&sql, params).await {
                        Ok(stream) => forward(Box::pin(stream), tx, name).await,
                        Err(e) => {
                            let _ = tx
                                .send(Err(format!("rows of {name}: {}", db_message(&e))))
                                .await;
                        }
                    }
                });
            }
            self.ranges.push_back(rx);
        }
        Ok(true)
    }

    /// Tables the caller knows were not written since the other side's copy
    /// (`pipeline::Settled`): the diff may count their rows instead of reading them.
    pub fn settled(mut self, tables: std::collections::BTreeSet<String>) -> Self {
        self.settled = tables;
        self
    }

    /// Read only the written rows of these tables (see `Narrowed`); their other rows are
    /// counted (`unread_rows`), equal on both sides. Before the first table.
    pub fn narrow(&mut self, tables: BTreeMap<String, Narrowed>) {
        self.narrowed = tables;
    }

    async fn open(&mut self, table: Table) -> Result<()> {
        if !self.streaming {
            self.client
                .batch_execute(STREAMING)
                .await
                .map_err(|e| query_error("planner settings", e))?;
            self.streaming = true;
        }
        let keys = self.narrowed.get(&table.name).map(|n| n.keys.clone());
        let sql = match keys {
            Some(keys) => table.keys_sql(&keys),
            None if self.open_ranges(&table).await? => return Ok(()),
            None => table.rows_sql(),
        };
        let params: [&str; 0] = [];
        let stream = self
            .client
            .query_raw(&sql, params)
            .await
            .map_err(|e| query_error(&format!("rows of {}", table.name), e))?;
        self.current = Some((table.name, Box::pin(stream)));
        Ok(())
    }
}

/// A range's rows into its channel, until the stream ends or the reader is gone.
async fn forward(
    mut stream: Pin<Box<RowStream>>,
    tx: tokio::sync::mpsc::Sender<std::result::Result<(String, String), String>>,
    name: String,
) {
    while let Some(row) = stream.next().await {
        let item = row
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .map_err(|e| format!("rows of {name}: {}", db_message(&e)));
        let failed = item.is_err();
        if tx.send(item).await.is_err() || failed {
            return;
        }
    }
}

impl Source for DbSource<'_> {
    async fn header(&mut self) -> Result<Header> {
        if self.header.is_none() {
            self.header = Some(header(self.client).await?);
        }
        Ok(self.header.clone().expect("set above"))
    }

    async fn next_table(&mut self) -> Result<Option<String>> {
        self.current = None;
        self.pending = None;
        self.ranges.clear();
        let Some(table) = self.tables.next() else {
            return Ok(None);
        };
        let name = table.name.clone();
        self.unread = self.narrowed.get(&name).map(|n| n.unread);
        // A settled table's rows may never be asked for: its stream waits for next_row.
        if self.settled.contains(&name) {
            self.pending = Some(table);
        } else {
            self.open(table).await?;
        }
        Ok(Some(name))
    }

    async fn settled_rows(&mut self) -> Result<Option<u64>> {
        let Some(t) = &self.pending else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT count(*) FROM {}{}.{}",
            if t.partitioned { "" } else { "ONLY " },
            quote_ident(&t.schema),
            quote_ident(&t.table)
        );
        let row = self
            .client
            .query_one(&sql, &[])
            .await
            .map_err(|e| query_error(&format!("rows of {}", t.name), e))?;
        Ok(Some(row.get::<_, i64>(0) as u64))
    }

    fn unread_rows(&self) -> Option<u64> {
        self.unread
    }

    async fn next_row(&mut self) -> Result<Option<Row>> {
        if let Some(table) = self.pending.take() {
            self.open(table).await?;
        }
        while let Some(range) = self.ranges.front_mut() {
            match range.recv().await {
                Some(Ok((key, text))) => return Ok(Some((key, RowText(text)))),
                Some(Err(problem)) => return Err(Error::Server(problem)),
                None => {
                    self.ranges.pop_front();
                }
            }
        }
        let Some((name, stream)) = self.current.as_mut() else {
            return Ok(None);
        };
        let Some(row) = stream.next().await else {
            self.current = None;
            return Ok(None);
        };
        let row = row.map_err(|e| query_error(&format!("rows of {name}"), e))?;
        let key: String = row.get(0);
        let text: String = row.get(1);
        Ok(Some((key, RowText(text))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_sql_orders_by_key_bytes() {
        let t = Table {
            name: "public.t".into(),
            schema: "public".into(),
            table: "t".into(),
            key: KeyRule::Columns(vec!["a".into(), "b\"c".into()]),
            partitioned: false,
        };
        let sql = t.rows_sql();
        assert!(
            sql.contains("json_build_array(t.\"a\", t.\"b\"\"c\")::text"),
            "{sql}"
        );
        assert!(
            sql.contains("JOIN ONLY \"public\".\"t\" t ON t.ctid = s.c"),
            "{sql}"
        );
        assert!(sql.ends_with("ORDER BY s.k COLLATE \"C\""), "{sql}");
    }

    #[test]
    fn keys_become_one_array_literal_whatever_they_hold() {
        let keys = ["1", r#"[2, "a\"b"]"#, "it's", "{x,y}"].map(String::from);
        assert_eq!(
            text_array(&keys),
            r#"'{"1","[2, \"a\\\"b\"]","it''s","{x,y}"}'::text[]"#
        );
    }

    #[test]
    fn written_rows_are_the_half_circle_of_ids_from_since_on() {
        // The 32-bit distance, so ids past a wraparound still count as after `since`.
        assert_eq!(
            written_sql((5 << 32) + 4_294_967_290),
            "((t.xmin::text::bigint - 4294967290) & 4294967295) < 2147483648"
        );
    }
}
