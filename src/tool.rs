//! Migration-tool presets: what pgsnapdiff knows about Alembic, Django, sqlx, golang-migrate,
//! Rails and Flyway. Pure data, no I/O: which table is the tool's bookkeeping (left out of the
//! data diff; its content is the revision), how to read the current revision from it, the
//! command that moves one migration down, and where to find the tool in a dump.
//!
//! README "Migration tools" is the user-facing table; keep the two in step.

use serde::Deserialize;

/// A migration tool (`[migrations] tool`, `--tool`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    Alembic,
    Django,
    Sqlx,
    GolangMigrate,
    Rails,
    Flyway,
    /// Plain SQL files, no bookkeeping table: no revision.
    SqlFiles,
    /// Anything else: the revision comes from `revision_sql`, bookkeeping from `exclude_tables`.
    Custom,
}

/// How a tool's current revision is read. Every query returns text rows (first column);
/// `{table}` is replaced by the bookkeeping table, schema-qualified and quoted. Rows are sorted
/// by the caller. No row: the tool's base (nothing applied).
pub struct RevisionQuery {
    /// The bookkeeping table the query reads (unqualified); absent from the database, the
    /// revision is unknown (null), not base.
    pub table: &'static str,
    pub sql: &'static str,
}

/// The Django step: one migration down, computed from the database and the migration graph
/// (run by `manage.py shell -c`), with the plan printed first. README "Django".
pub const DJANGO_STEP: &str = include_str!("tool/django_step.py");

/// The variable that carries the Django step's script to `manage.py shell -c`.
pub const DJANGO_STEP_VAR: &str = "PGSNAPDIFF_DJANGO_STEP";

/// The variable that names the one Django app to move (empty: the last migration applied).
pub const DJANGO_APP_VAR: &str = "PGSNAPDIFF_DJANGO_APP";

impl Tool {
    pub const DETECTABLE: &'static [Tool] = &[
        Tool::Alembic,
        Tool::Django,
        Tool::Sqlx,
        Tool::Flyway,
        Tool::Rails,
        Tool::GolangMigrate,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Tool::Alembic => "alembic",
            Tool::Django => "django",
            Tool::Sqlx => "sqlx",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Rails => "rails",
            Tool::Flyway => "flyway",
            Tool::SqlFiles => "sql-files",
            Tool::Custom => "custom",
        }
    }

    /// The tool's own tables (unqualified names, any user schema): kept out of the data diff,
    /// never data loss; the revision line reports what they hold.
    pub fn bookkeeping(self) -> &'static [&'static str] {
        match self {
            Tool::Alembic => &["alembic_version"],
            Tool::Django => &["django_migrations"],
            Tool::Sqlx => &["_sqlx_migrations"],
            Tool::GolangMigrate => &["schema_migrations"],
            Tool::Rails => &["schema_migrations", "ar_internal_metadata"],
            Tool::Flyway => &["flyway_schema_history"],
            Tool::SqlFiles | Tool::Custom => &[],
        }
    }

    /// The built-in revision query; `None` for `sql-files` and `custom`. A Django revision is
    /// one `app.migration` per app (its latest applied by name), optionally one app only.
    pub fn revision_query(self, django_app: Option<&str>) -> Option<RevisionQuery> {
        let sql = match self {
            Tool::Alembic => "SELECT version_num::text FROM {table}",
            Tool::Django if django_app.is_some() => {
                "SELECT app || '.' || max(name) FROM {table} WHERE app = {app} GROUP BY app"
            }
            Tool::Django => "SELECT app || '.' || max(name) FROM {table} GROUP BY app",
            Tool::Sqlx => {
                "SELECT max(version)::text FROM {table} WHERE success HAVING max(version) IS NOT NULL"
            }
            Tool::GolangMigrate => {
                "SELECT version::text || CASE WHEN dirty THEN ' (dirty)' ELSE '' END FROM {table}"
            }
            Tool::Rails => "SELECT max(version)::text FROM {table} HAVING max(version) IS NOT NULL",
            // The latest successful versioned migration that no later undo reverted.
            Tool::Flyway => {
                "SELECT h.version FROM {table} h WHERE h.success AND h.version IS NOT NULL \
                 AND h.type NOT LIKE 'UNDO%' AND NOT EXISTS (SELECT 1 FROM {table} u \
                 WHERE u.type LIKE 'UNDO%' AND u.success AND u.version = h.version \
                 AND u.installed_rank > h.installed_rank) \
                 ORDER BY h.installed_rank DESC LIMIT 1"
            }
            Tool::SqlFiles | Tool::Custom => return None,
        };
        Some(RevisionQuery {
            table: self.bookkeeping()[0],
            sql,
        })
    }

    /// The command that moves the database one migration down, when the tool has one. Django's
    /// is `manage.py shell -c` running [`DJANGO_STEP`] (passed in [`DJANGO_STEP_VAR`]).
    pub fn step_command(self, python: &str) -> Option<String> {
        Some(match self {
            Tool::Alembic => "alembic downgrade -1".into(),
            Tool::Django => format!("{python} manage.py shell -c \"${DJANGO_STEP_VAR}\""),
            Tool::Sqlx => "sqlx migrate revert".into(),
            Tool::GolangMigrate => {
                "migrate -path migrations -database \"$DATABASE_URL\" down 1".into()
            }
            Tool::Rails => "bin/rails db:rollback".into(),
            Tool::Flyway | Tool::SqlFiles | Tool::Custom => return None,
        })
    }

    /// Why there is no default step, for the error that asks for one.
    pub fn no_step_hint(self) -> &'static str {
        match self {
            Tool::Flyway => {
                "Flyway's free edition has no downgrade: pass --downgrade-sql with your undo script (it should also delete its row from flyway_schema_history), or --downgrade-cmd 'flyway undo ...'"
            }
            _ => {
                "pass --downgrade-sql FILE or --downgrade-cmd CMD, or set [downgrade] sql/cmd in pgsnapdiff.toml"
            }
        }
    }

    /// Does `revision` (sorted, as the revision query returns it) stand at `to`? `base` is the
    /// empty set. A Django target is `app.migration` (or `app.zero`): that app's entry.
    pub fn at(self, revision: &[String], to: &str) -> bool {
        if to == "base" {
            return revision.is_empty();
        }
        if self == Tool::Django
            && let Some((app, name)) = to.split_once('.')
        {
            let entry = revision
                .iter()
                .find(|r| r.split_once('.').is_some_and(|(a, _)| a == app));
            return match entry {
                None => name == "zero",
                Some(e) => e == to,
            };
        }
        revision == [to]
    }
}

/// A path matched by a glob on `schema.table`: `*` any run of characters, `?` one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative wildcard matching with one backtrack point (the last `*`).
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        assert!(glob_match("public.django_*", "public.django_session"));
        assert!(glob_match("*.log", "public.log"));
        assert!(glob_match("public.t?", "public.t1"));
        assert!(!glob_match("public.t?", "public.t12"));
        assert!(!glob_match("log", "public.log"));
        assert!(glob_match("*", "a.b"));
        assert!(glob_match("a*b*c", "a.xbyc"));
        assert!(!glob_match("a*b*c", "a.xbyd"));
    }

    #[test]
    fn targets_per_tool() {
        let revs = |r: &[&str]| r.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(Tool::Alembic.at(&revs(&["a1"]), "a1"));
        assert!(!Tool::Alembic.at(&revs(&["a1", "b2"]), "a1"));
        assert!(Tool::Alembic.at(&[], "base"));
        let django = revs(&["auth.0012_x", "shop.0001_initial"]);
        assert!(Tool::Django.at(&django, "shop.0001_initial"));
        assert!(!Tool::Django.at(&django, "shop.0002_note"));
        assert!(!Tool::Django.at(&django, "shop.zero"));
        assert!(Tool::Django.at(&revs(&["auth.0012_x"]), "shop.zero"));
    }

    #[test]
    fn every_detectable_tool_has_a_revision_query_on_its_first_bookkeeping_table() {
        for tool in Tool::DETECTABLE {
            let q = tool.revision_query(None).expect("a query");
            assert_eq!(q.table, tool.bookkeeping()[0]);
            assert!(q.sql.contains("{table}"));
        }
    }
}
