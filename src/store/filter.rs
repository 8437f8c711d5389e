//! ListGroups filters as SQL conditions. The filter language is parsed in
//! the domain; here each node of its tree becomes a condition on the
//! `groups` table, spelled per database where they differ.
//!
//! Conditions on labels read the `group_labels` rows through their index
//! (see [`has_label_row`]), never the JSON column. Label terms of the same
//! polarity that an OR (or, negated, an AND) joins become one lookup whose
//! rows match any of them: `-labels.a:x -labels.b:y` is one "has no label
//! row with a = *x* or b = *y*" instead of two, so the work per group does
//! not grow with the number of such terms. Terms repeated under one AND or
//! OR are kept once.
//!
//! The domain evaluates the same tree in memory (`Filter::matches`), and
//! must answer what this SQL answers: change both together;
//! `tests/api/filter/agreement.rs` compares them on both databases.

use sea_orm::{
    ColumnTrait as _, Condition,
    sea_query::{Expr, ExprTrait as _, Query},
};

use super::{
    Dialect,
    entities::{group_labels, groups},
};
use crate::domain::filter::{Filter, TextField, TextOp};

/// The groups a listing matches, on every page.
pub fn matching(dialect: Dialect, show_deleted: bool, filter: Option<&Filter>) -> Condition {
    let mut condition = Condition::all();
    if !show_deleted {
        condition = condition.add(groups::Column::DeleteTime.is_null());
    }
    if let Some(filter) = filter {
        condition = condition.add(translate(dialect, filter).into_condition(dialect));
    }
    condition
}

/// A filter node on its way to SQL.
enum Node {
    /// Any condition on the group's row.
    Row(Condition),
    /// The group has a label row matching one of `rows` (lacks every such
    /// row, when `negated`). Kept apart from [`Node::Row`] until its
    /// parent is known, so that siblings can share one lookup.
    Labels { negated: bool, rows: Vec<LabelRow> },
}

/// A condition on one `group_labels` row, before case folding (which needs
/// the dialect).
#[derive(Clone, PartialEq)]
enum LabelRow {
    /// The row of key `.0`.
    Key(String),
    /// The row of key `.0`, with value `.1`.
    Equals(String, String),
    /// The row of key `.0`, with a value that is not empty.
    NotEmpty(String),
    /// The row of key `.0`, whose value contains `.1` (already lowercased)
    /// ignoring ASCII case.
    Contains(String, String),
}

impl LabelRow {
    fn condition(&self, dialect: Dialect) -> Condition {
        let key = |key: &str| Expr::col((group_labels::Entity, group_labels::Column::Key)).eq(key);
        let value = || Expr::col((group_labels::Entity, group_labels::Column::Value));
        match self {
            Self::Key(k) => Condition::all().add(key(k)),
            Self::Equals(k, v) => Condition::all().add(key(k)).add(value().eq(v.as_str())),
            Self::NotEmpty(k) => Condition::all().add(key(k)).add(value().ne("")),
            Self::Contains(k, text) => Condition::all()
                .add(key(k))
                .add(dialect.contains(value(), text)),
        }
    }
}

impl Node {
    fn labels(row: LabelRow) -> Self {
        Self::Labels {
            negated: false,
            rows: vec![row],
        }
    }

    fn into_condition(self, dialect: Dialect) -> Condition {
        match self {
            Self::Row(condition) => condition,
            Self::Labels { negated, rows } => {
                let any = rows
                    .iter()
                    .fold(Condition::any(), |any, row| any.add(row.condition(dialect)));
                let lookup = Condition::all().add(has_label_row(any));
                if negated { lookup.not() } else { lookup }
            }
        }
    }
}

/// The condition that the group has a row in `group_labels` matching
/// `rows`: `groups.id IN (SELECT group_id …)`. Both databases run the
/// lookup once and probe its result for each group, and drive the query
/// from it when it is selective (PostgreSQL makes it a semi-join where it
/// can). A correlated `EXISTS` was tried on PostgreSQL: under OR or NOT it
/// runs once per group, and four such terms over 50,000 groups took about
/// 550 ms against about 200 ms this way; on SQLite, counting the 2,500
/// groups of one label value took 65 ms against 3.6 ms.
fn has_label_row(rows: Condition) -> Expr {
    let lookup = Query::select()
        .column((group_labels::Entity, group_labels::Column::GroupId))
        .from(group_labels::Entity)
        .cond_where(rows)
        .to_owned();
    Expr::col((groups::Entity, groups::Column::Id)).in_subquery(lookup)
}

/// A condition that always holds.
fn always() -> Condition {
    Condition::all().add(Expr::cust("1 = 1"))
}

/// `parts` without repeats (joined by AND or OR, a repeat adds nothing).
fn distinct(parts: &[Filter]) -> Vec<&Filter> {
    let mut kept: Vec<&Filter> = Vec::with_capacity(parts.len());
    for part in parts {
        if !kept.contains(&part) {
            kept.push(part);
        }
    }
    kept
}

/// The children of an AND (`conjunction`) or an OR, joined, with the label
/// lookups of the polarity that can share one merged into a single node:
/// under OR, "has a row matching a" or "has a row matching b" is "has a row
/// matching a or b"; under AND, "has no row matching a" and "has none
/// matching b" is "has no row matching a or b".
fn join(dialect: Dialect, parts: &[Filter], conjunction: bool) -> Node {
    let mut merged: Vec<LabelRow> = Vec::new();
    let mut others: Vec<Node> = Vec::new();
    for part in distinct(parts) {
        match translate(dialect, part) {
            Node::Labels { negated, rows } if negated == conjunction => {
                for row in rows {
                    if !merged.contains(&row) {
                        merged.push(row);
                    }
                }
            }
            node => others.push(node),
        }
    }
    if !merged.is_empty() {
        others.push(Node::Labels {
            negated: conjunction,
            rows: merged,
        });
    }
    if others.len() == 1
        && let Some(only) = others.pop()
    {
        return only;
    }
    let joined = if conjunction {
        Condition::all()
    } else {
        Condition::any()
    };
    Node::Row(others.into_iter().fold(joined, |joined, node| {
        joined.add(node.into_condition(dialect))
    }))
}

fn translate(dialect: Dialect, filter: &Filter) -> Node {
    match filter {
        Filter::And(parts) => join(dialect, parts, true),
        Filter::Or(parts) => join(dialect, parts, false),
        Filter::Not(inner) => match translate(dialect, inner) {
            Node::Labels { negated, rows } => Node::Labels {
                negated: !negated,
                rows,
            },
            Node::Row(condition) => Node::Row(condition.not()),
        },
        Filter::Inactive(inactive) => {
            Node::Row(Condition::all().add(groups::Column::Inactive.eq(*inactive)))
        }
        Filter::Deleted(true) => {
            Node::Row(Condition::all().add(groups::Column::DeleteTime.is_not_null()))
        }
        Filter::Deleted(false) => {
            Node::Row(Condition::all().add(groups::Column::DeleteTime.is_null()))
        }
        Filter::HasLabel(key) => Node::labels(LabelRow::Key(key.clone())),
        Filter::Text { field, op } => {
            let column = match field {
                TextField::Name => groups::Column::Name,
                TextField::Scope => groups::Column::Scope,
                TextField::Email => groups::Column::Email,
                TextField::Provenance => groups::Column::Provenance,
                TextField::Label(key) => return label_text(key, op),
            };
            let value = Expr::col((groups::Entity, column));
            let condition = match op {
                TextOp::Equals(text) => value.eq(text.as_str()),
                TextOp::Contains(text) if text.is_empty() => return Node::Row(always()),
                TextOp::Contains(text) => dialect.contains(value, &text.to_ascii_lowercase()),
                TextOp::Present => value.ne(""),
            };
            Node::Row(Condition::all().add(condition))
        }
    }
}

/// `labels.<key>` compared with `op`. A missing label compares as the
/// empty string, so that `labels.k != "x"` holds for groups without `k`,
/// and so does `labels.k = ""`.
fn label_text(key: &str, op: &TextOp) -> Node {
    let key = key.to_owned();
    match op {
        TextOp::Equals(text) if text.is_empty() => Node::Labels {
            negated: true,
            rows: vec![LabelRow::NotEmpty(key)],
        },
        TextOp::Equals(text) => Node::labels(LabelRow::Equals(key, text.clone())),
        TextOp::Contains(text) if text.is_empty() => Node::Row(always()),
        TextOp::Contains(text) => Node::labels(LabelRow::Contains(key, text.to_ascii_lowercase())),
        TextOp::Present => Node::labels(LabelRow::NotEmpty(key)),
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{EntityTrait as _, QueryFilter as _, QueryTrait as _};

    use super::*;
    use crate::domain::filter::parse;

    /// The SQL of a listing filtered by `filter`, with its values inlined.
    fn sql(dialect: Dialect, filter: &str) -> String {
        let parsed = parse(filter)
            .unwrap_or_else(|v| panic!("{filter}: {}", v.description))
            .unwrap_or_else(|| panic!("{filter} is empty"));
        groups::Entity::find()
            .filter(matching(dialect, false, Some(&parsed)))
            .build(dialect.backend())
            .to_string()
    }

    /// How many times the listing of `filter` looks label rows up.
    fn lookups(dialect: Dialect, filter: &str) -> usize {
        sql(dialect, filter)
            .matches("FROM \"group_labels\"")
            .count()
    }

    #[test]
    fn label_terms_of_one_polarity_share_one_lookup_and_repeats_count_once() {
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let probe = vec!["-labels.a:b"; 170].join(" ");
            assert_eq!(lookups(dialect, &probe), 1, "{dialect:?}: the probe");
            let search = match dialect {
                Dialect::Sqlite => "instr(",
                Dialect::Postgres => "strpos(",
            };
            assert_eq!(sql(dialect, &probe).matches(search).count(), 1);
            for (filter, expected) in [
                ("labels.a = x", 1),
                ("labels.a = x OR labels.b:y OR labels:c", 1),
                ("-labels.a = x -labels.b:y NOT labels:c", 1),
                ("labels.a = x AND labels.b = y", 2),
                ("-labels.a = x OR -labels.b = y", 2),
                ("labels.a != x labels.b = \"\"", 1),
                ("(labels.a = x OR name = n) (labels.a = y OR name = m)", 2),
                ("labels.a:\"\"", 0),
                ("name:x", 0),
            ] {
                assert_eq!(lookups(dialect, filter), expected, "{dialect:?}: {filter}");
            }
        }
    }

    #[test]
    fn a_missing_label_compares_as_the_empty_string() {
        // `labels.k = ""` holds for groups without `k`: it is "has no
        // non-empty `k`", a negated lookup.
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let equals_empty = sql(dialect, "labels.k = \"\"");
            assert!(equals_empty.contains("NOT"), "{equals_empty}");
            assert!(equals_empty.contains("<> ''"), "{equals_empty}");
        }
    }
}
