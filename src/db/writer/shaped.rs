//! Batch statements of one fixed text whatever the batch size: the rows travel as one JSON
//! argument that `JSON_TABLE` expands inside the statement. A multi-row `INSERT … VALUES` or an
//! `IN (…)` list changes its text with every batch size, so Diesel never caches it and each
//! batch paid a prepare and a close around its execute; this text never changes, so each
//! connection prepares it once and every later batch pays only the execute.

use chrono::NaiveDateTime;
use diesel::mysql::{Mysql, MysqlConnection};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::sql_types::{Datetime, Text};
use diesel::{QueryResult, RunQueryDsl};
use serde::Serialize;

enum Arg {
    Json(String),
    Text(&'static str),
    Datetime(NaiveDateTime),
}

/// A statement of fixed text with its arguments, one per `?`, in order.
pub(in crate::db) struct Shaped {
    sql: &'static str,
    args: Vec<Arg>,
}

impl Shaped {
    pub(in crate::db) fn new(sql: &'static str) -> Shaped {
        Shaped {
            sql,
            args: Vec::new(),
        }
    }

    /// The next argument: `rows` as a JSON array (each row an array or tuple, its columns by
    /// position: `'$[0]'`, `'$[1]'`…).
    pub(in crate::db) fn rows<R: Serialize>(mut self, rows: &[R]) -> Shaped {
        // Numbers, strings, options and tuples of them: serializing cannot fail.
        let json = serde_json::to_string(rows).unwrap_or_else(|_| "[]".to_string());
        self.args.push(Arg::Json(json));
        self
    }

    pub(in crate::db) fn text(mut self, text: &'static str) -> Shaped {
        self.args.push(Arg::Text(text));
        self
    }

    pub(in crate::db) fn datetime(mut self, at: NaiveDateTime) -> Shaped {
        self.args.push(Arg::Datetime(at));
        self
    }

    /// Runs it; the rows it affected.
    pub(in crate::db) fn run(self, conn: &mut MysqlConnection) -> QueryResult<usize> {
        debug_assert_eq!(
            self.sql.matches('?').count(),
            self.args.len(),
            "one argument per placeholder: {}",
            self.sql
        );
        self.execute(conn)
    }
}

/// A timestamp as a `DATETIME(6)` column of `JSON_TABLE` reads it.
pub(in crate::db) fn stamp(at: NaiveDateTime) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
}

impl QueryId for Shaped {
    type QueryId = ();
    // Told apart by its text, which Diesel's statement cache keys on.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl QueryFragment<Mysql> for Shaped {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Mysql>) -> QueryResult<()> {
        let mut parts = self.sql.split('?');
        out.push_sql(parts.next().unwrap_or_default());
        for (arg, part) in self.args.iter().zip(parts) {
            match arg {
                Arg::Json(json) => out.push_bind_param::<Text, _>(json)?,
                Arg::Text(text) => out.push_bind_param::<Text, _>(*text)?,
                Arg::Datetime(at) => out.push_bind_param::<Datetime, _>(at)?,
            }
            out.push_sql(part);
        }
        Ok(())
    }
}

impl RunQueryDsl<MysqlConnection> for Shaped {}
