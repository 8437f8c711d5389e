//! sea-orm entities, one module per table created by the `migrations` crate.

/// A group's row: every field except membership and parents.
pub mod groups {
    use sea_orm::entity::prelude::*;

    /// One group.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "groups")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub scope: String,
        pub description: String,
        pub email: String,
        pub inactive: bool,
        pub provenance: String,
        /// A JSON object of label keys to values.
        pub labels: String,
        /// A JSON array of role ids.
        pub assigned_roles: String,
        pub member_count: i64,
        pub version: i64,
        pub create_time: i64,
        pub update_time: i64,
        pub delete_time: Option<i64>,
        pub created_by: String,
        pub updated_by: String,
        pub request_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One row per (group, direct member).
pub mod group_members {
    use sea_orm::entity::prelude::*;

    /// One direct member of one group.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_members")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_id: String,
        pub is_admin: bool,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One row per (group, label): the labels of the group's JSON column, as
/// rows that filters find through an index.
pub mod group_labels {
    use sea_orm::entity::prelude::*;

    /// Label `key` of group `group_id` has `value`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_labels")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub key: String,
        pub value: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// One row per (group, parent group).
pub mod group_parents {
    use sea_orm::entity::prelude::*;

    /// `group_id` is a member of `parent_id`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_parents")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub parent_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// The history: one row per write.
pub mod group_changes {
    use sea_orm::entity::prelude::*;

    /// One write to one group.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "group_changes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub group_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub version: i64,
        pub change_time: i64,
        pub actor: String,
        pub kind: String,
        /// Comma-separated mask paths.
        pub update_mask: String,
        /// The group after the change, as JSON.
        pub snapshot: String,
        /// JSON arrays of principal ids.
        pub members_added: String,
        pub members_removed: String,
        pub admins_added: String,
        pub admins_removed: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Server-wide secrets shared by every replica, such as the page-token key.
pub mod server_secrets {
    use sea_orm::entity::prelude::*;

    /// One named secret.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "server_secrets")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub name: String,
        pub value: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
