//! ListGroups filters as SQL conditions. The filter language is parsed in
//! the domain; here each node of its tree becomes a condition on the
//! `groups` table, spelled per database where they differ.

use sea_orm::{
    ColumnTrait as _, Condition,
    sea_query::{Expr, ExprTrait as _, Func, LikeExpr},
};

use super::{Dialect, entities::groups};
use crate::domain::filter::{Filter, TextField, TextOp};

/// The groups a listing matches, on every page.
pub fn matching(dialect: Dialect, show_deleted: bool, filter: Option<&Filter>) -> Condition {
    let mut condition = Condition::all();
    if !show_deleted {
        condition = condition.add(groups::Column::DeleteTime.is_null());
    }
    if let Some(filter) = filter {
        condition = condition.add(filter_condition(dialect, filter));
    }
    condition
}

/// Escapes LIKE's wildcards (and the escape character itself), so a filter
/// value matches only itself.
fn like_literal(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

fn filter_condition(dialect: Dialect, filter: &Filter) -> Condition {
    match filter {
        Filter::And(parts) => parts.iter().fold(Condition::all(), |all, part| {
            all.add(filter_condition(dialect, part))
        }),
        Filter::Or(parts) => parts.iter().fold(Condition::any(), |any, part| {
            any.add(filter_condition(dialect, part))
        }),
        Filter::Not(inner) => filter_condition(dialect, inner).not(),
        Filter::Inactive(inactive) => Condition::all().add(groups::Column::Inactive.eq(*inactive)),
        Filter::Deleted(true) => Condition::all().add(groups::Column::DeleteTime.is_not_null()),
        Filter::Deleted(false) => Condition::all().add(groups::Column::DeleteTime.is_null()),
        Filter::HasLabel(key) => Condition::all().add(dialect.label_value(key).is_not_null()),
        Filter::Text { field, op } => {
            let value = match field {
                TextField::Name => Expr::col(groups::Column::Name),
                TextField::Scope => Expr::col(groups::Column::Scope),
                TextField::Email => Expr::col(groups::Column::Email),
                TextField::Provenance => Expr::col(groups::Column::Provenance),
                // A missing label compares as the empty string, so that
                // `labels.k != "x"` holds for groups without `k`.
                TextField::Label(key) => {
                    Expr::expr(Func::coalesce([dialect.label_value(key), Expr::val("")]))
                }
            };
            let condition = match op {
                TextOp::Equals(text) => value.eq(text.as_str()),
                TextOp::Contains(text) => dialect.fold_ascii_case(value).like(
                    LikeExpr::new(format!("%{}%", like_literal(&text.to_ascii_lowercase())))
                        .escape('\\'),
                ),
                TextOp::Present => value.ne(""),
            };
            Condition::all().add(condition)
        }
    }
}
