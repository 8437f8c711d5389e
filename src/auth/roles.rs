//! The roles file (`--roles-file`): a JSON object mapping principals to
//! lists of role names, `{"alice": ["groups.admin"], "spiffe://…/ci":
//! ["groups.creator"]}`. Its roles are added to those of a caller of any
//! mode; for mTLS and Basic callers it is the only source of roles.
//!
//! Read again when it changes; a version that does not parse is refused
//! whole and the last good one kept. Within a good file, an entry whose key
//! is not a valid principal id is skipped, and role names groupd does not
//! know are dropped, each logged.

use std::{
    collections::{BTreeSet, HashMap},
    path::Path,
    sync::{Arc, Mutex, PoisonError, RwLock},
};

use serde_json::Value;

use super::watched::WatchedFile;
use crate::domain::{Principal, Role};

/// The roles each principal holds, as a roles file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    roles: HashMap<String, BTreeSet<Role>>,
}

/// A roles file read: its map and what was skipped in it.
#[derive(Debug)]
pub struct ParsedRoles {
    /// The roles of each principal.
    pub map: RoleMap,
    /// One line per skipped entry or role name.
    pub skipped: Vec<String>,
}

impl RoleMap {
    /// Reads a roles file. Fails when it is not a JSON object whose values
    /// are arrays of strings.
    pub fn parse(bytes: &[u8]) -> Result<ParsedRoles, String> {
        let document: Value = serde_json::from_slice(bytes)
            .map_err(|error| format!("the roles file is not JSON: {error}"))?;
        let Value::Object(entries) = document else {
            return Err("the roles file is not a JSON object of principal → role names".to_owned());
        };
        let mut roles = HashMap::new();
        let mut skipped = Vec::new();
        for (principal, names) in entries {
            let Some(names) = names.as_array() else {
                return Err(format!(
                    "the roles of {} are not an array of role names",
                    crate::domain::quote(&principal)
                ));
            };
            let mut held = BTreeSet::new();
            for name in names {
                let Some(name) = name.as_str() else {
                    return Err(format!(
                        "the roles of {} are not an array of role names",
                        crate::domain::quote(&principal)
                    ));
                };
                match Role::parse(name) {
                    Some(role) => {
                        held.insert(role);
                    }
                    None => skipped.push(format!(
                        "unknown role {} of {} dropped",
                        crate::domain::quote(name),
                        crate::domain::quote(&principal)
                    )),
                }
            }
            if Principal::parse(&principal).is_none() {
                skipped.push(format!(
                    "{} is not a valid principal id; its entry is skipped",
                    crate::domain::quote(&principal)
                ));
                continue;
            }
            roles.insert(principal, held);
        }
        Ok(ParsedRoles {
            map: Self { roles },
            skipped,
        })
    }

    /// The roles `principal` holds here.
    pub fn roles_of(&self, principal: &Principal) -> impl Iterator<Item = Role> + '_ {
        self.roles
            .get(principal.as_str())
            .into_iter()
            .flat_map(|roles| roles.iter().copied())
    }

    /// How many principals the map names.
    pub fn len(&self) -> usize {
        self.roles.len()
    }

    /// Whether the map names no principal.
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

/// The roles file and the map it last held that parsed.
#[derive(Debug)]
pub struct RolesFile {
    file: Mutex<WatchedFile>,
    map: RwLock<Arc<RoleMap>>,
}

impl RolesFile {
    /// The roles file at `path`, read now: it must exist and parse.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let roles = Self {
            file: Mutex::new(WatchedFile::new(path)),
            map: RwLock::new(Arc::default()),
        };
        roles.reload()?;
        Ok(roles)
    }

    /// Reads the file again if it changed. Returns whether a new map was
    /// installed; fails (keeping the map in use) when the file cannot be
    /// read or does not parse.
    pub fn reload(&self) -> anyhow::Result<bool> {
        let mut file = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        let path = file.path().display().to_string();
        let Some(contents) = file
            .read_if_changed()
            .map_err(|error| anyhow::anyhow!("cannot read the roles file {path}: {error}"))?
        else {
            return Ok(false);
        };
        let parsed = RoleMap::parse(&contents)
            .map_err(|problem| anyhow::anyhow!("the roles file {path}: {problem}"))?;
        for skipped in &parsed.skipped {
            tracing::warn!(roles_file = %path, "{skipped}");
        }
        tracing::info!(roles_file = %path, principals = parsed.map.len(), "roles loaded");
        *self.map.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(parsed.map);
        Ok(true)
    }

    /// The map in use.
    pub fn map(&self) -> Arc<RoleMap> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(id: &str) -> Principal {
        Principal::parse(id).unwrap()
    }

    #[test]
    fn roles_are_read_per_principal_and_unknown_names_dropped() {
        let parsed = RoleMap::parse(
            br#"{"alice": ["groups.admin", "groups.owner"],
                 "spiffe://example.org/ci": ["groups.creator"],
                 "bad id!": ["groups.admin"],
                 "bob": []}"#,
        )
        .unwrap();
        let map = parsed.map;
        assert_eq!(map.len(), 3);
        assert_eq!(
            map.roles_of(&principal("alice")).collect::<Vec<_>>(),
            vec![Role::Admin]
        );
        assert_eq!(
            map.roles_of(&principal("spiffe://example.org/ci"))
                .collect::<Vec<_>>(),
            vec![Role::Creator]
        );
        assert_eq!(map.roles_of(&principal("bob")).count(), 0);
        assert_eq!(map.roles_of(&principal("carol")).count(), 0);
        assert_eq!(parsed.skipped.len(), 2, "{:?}", parsed.skipped);
    }

    #[test]
    fn files_of_another_shape_are_refused() {
        for refused in [
            &b"not json"[..],
            b"[]",
            b"{\"alice\": \"groups.admin\"}",
            b"{\"alice\": [1]}",
        ] {
            assert!(
                RoleMap::parse(refused).is_err(),
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }

    #[test]
    fn a_reload_keeps_the_last_good_map_when_the_file_breaks() {
        let dir = std::env::temp_dir().join(format!("groupd-roles-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("roles.json");
        std::fs::write(&path, r#"{"alice": ["groups.reader"]}"#).unwrap();
        let roles = RolesFile::load(&path).unwrap();
        assert!(!roles.reload().unwrap(), "unchanged");
        std::fs::write(&path, r#"{"alice": ["groups.admin"]}"#).unwrap();
        assert!(roles.reload().unwrap());
        assert_eq!(
            roles
                .map()
                .roles_of(&principal("alice"))
                .collect::<Vec<_>>(),
            vec![Role::Admin]
        );
        std::fs::write(&path, "{broken").unwrap();
        assert!(roles.reload().is_err());
        assert_eq!(
            roles
                .map()
                .roles_of(&principal("alice"))
                .collect::<Vec<_>>(),
            vec![Role::Admin],
            "the last good map is kept"
        );
        assert!(!roles.reload().unwrap(), "a broken file is reported once");
        std::fs::remove_file(&path).unwrap();
        assert!(roles.reload().is_err());
        assert_eq!(roles.map().len(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            RolesFile::load(&path).is_err(),
            "a missing file fails at start"
        );
    }
}
