//! Paging and ordering rules shared by the list RPCs (AIP-132, AIP-158).

use serde::{Deserialize, Serialize};

use super::{FieldViolation, Group, text::quote};

/// The page size when a request asks for none.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// The largest page served; larger requests are served this many.
pub const MAX_PAGE_SIZE: u64 = 1000;

/// The page size to serve for a requested one: 0 means the default, more
/// than the maximum means the maximum, negative is an error.
pub fn page_size(requested: i32) -> Result<u64, FieldViolation> {
    match u64::try_from(requested) {
        Ok(0) => Ok(DEFAULT_PAGE_SIZE),
        Ok(size) => Ok(size.min(MAX_PAGE_SIZE)),
        Err(_) => Err(FieldViolation::new(
            "page_size",
            format!("page_size must not be negative; got {requested}"),
        )),
    }
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items, at most the page size.
    pub items: Vec<T>,
    /// The token of the next page; empty on the last page.
    pub next_page_token: String,
    /// How many items all pages hold, for the listings that count them.
    pub total_size: Option<u64>,
    /// The change feed's position as of the page, for the listings that
    /// give one (ListGroups).
    pub cursor: Option<super::watch::Cursor>,
}

/// A field groups can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderField {
    /// `name`, byte-wise.
    Name,
    /// `create_time`.
    CreateTime,
    /// `update_time`.
    UpdateTime,
}

/// The order of a group listing; ties are broken by id in the same
/// direction, so the order is total and pages never overlap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderBy {
    /// The field to sort by.
    pub field: OrderField,
    /// Largest first.
    pub descending: bool,
}

impl Default for OrderBy {
    fn default() -> Self {
        Self {
            field: OrderField::CreateTime,
            descending: false,
        }
    }
}

impl OrderBy {
    /// Parses an AIP-132 `order_by` naming one field, optionally followed
    /// by `asc` or `desc`. Empty means the default, `create_time`.
    pub fn parse(text: &str) -> Result<Self, FieldViolation> {
        let mut words = text.split_whitespace();
        let Some(field) = words.next() else {
            return Ok(Self::default());
        };
        let field = match field {
            "name" => OrderField::Name,
            "create_time" => OrderField::CreateTime,
            "update_time" => OrderField::UpdateTime,
            other => {
                return Err(FieldViolation::new(
                    "order_by",
                    format!(
                        "cannot order by {}; use name, create_time or update_time, \
                         optionally followed by desc",
                        quote(other)
                    ),
                ));
            }
        };
        let descending = match (words.next(), words.next()) {
            (None, _) | (Some("asc"), None) => false,
            (Some("desc"), None) => true,
            _ => {
                return Err(FieldViolation::new(
                    "order_by",
                    format!(
                        "{} is not `FIELD`, `FIELD asc` or `FIELD desc`",
                        quote(text)
                    ),
                ));
            }
        };
        Ok(Self { field, descending })
    }

    /// The canonical text of this order, for comparing page tokens.
    pub fn canonical(&self) -> String {
        let field = match self.field {
            OrderField::Name => "name",
            OrderField::CreateTime => "create_time",
            OrderField::UpdateTime => "update_time",
        };
        let direction = if self.descending { "desc" } else { "asc" };
        format!("{field} {direction}")
    }
}

/// Where a group listing stopped: the sort key and id of the last group
/// served. The next page starts strictly after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCursor {
    /// The last group's value of the order field.
    pub key: CursorKey,
    /// The last group's id.
    pub id: String,
}

/// A value of an order field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CursorKey {
    /// A name.
    Text(String),
    /// A time, in microseconds.
    Micros(i64),
}

impl GroupCursor {
    /// The cursor just after `group` in a listing ordered by `field`.
    pub fn after(group: &Group, field: OrderField) -> Self {
        let key = match field {
            OrderField::Name => CursorKey::Text(group.fields.name.clone()),
            OrderField::CreateTime => CursorKey::Micros(group.create_time.as_micros()),
            OrderField::UpdateTime => CursorKey::Micros(group.update_time.as_micros()),
        };
        Self {
            key,
            id: group.id.as_str().to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_sizes_default_clamp_and_reject_negatives() {
        assert_eq!(page_size(0), Ok(DEFAULT_PAGE_SIZE));
        assert_eq!(page_size(7), Ok(7));
        assert_eq!(page_size(5000), Ok(MAX_PAGE_SIZE));
        assert_eq!(
            page_size(-1).map_err(|v| v.field),
            Err("page_size".to_owned())
        );
    }

    #[test]
    fn order_by_accepts_one_field_and_a_direction() {
        assert_eq!(
            OrderBy::parse("").map(|o| o.canonical()),
            Ok("create_time asc".into())
        );
        assert_eq!(
            OrderBy::parse(" name  desc ").map(|o| o.canonical()),
            Ok("name desc".into())
        );
        assert_eq!(
            OrderBy::parse("update_time asc").map(|o| o.canonical()),
            Ok("update_time asc".into())
        );
        assert!(OrderBy::parse("email").is_err());
        assert!(OrderBy::parse("name sideways").is_err());
        assert!(OrderBy::parse("name desc, id").is_err());
    }
}
