//! Who makes a request: its [`Principal`] and the service-wide [`Role`]s it
//! holds, as authentication established them. What a caller may do with a
//! group is decided from these by `policy`.

use std::collections::BTreeSet;

use super::Principal;

/// A service-wide role. Roles of other names (a token's claim is shared
/// with other services) mean nothing to groupd and are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// `groups.admin`: may do everything.
    Admin,
    /// `groups.reader`: may read every group, its members and history, and
    /// ask about anyone's memberships.
    Reader,
    /// `groups.creator`: may create groups.
    Creator,
}

impl Role {
    /// Every role.
    pub const ALL: [Self; 3] = [Self::Admin, Self::Reader, Self::Creator];

    /// The role's name, as tokens and the roles file spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "groups.admin",
            Self::Reader => "groups.reader",
            Self::Creator => "groups.creator",
        }
    }

    /// The role named `name`, if groupd knows it.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    principal: Principal,
    roles: BTreeSet<Role>,
}

impl Caller {
    /// A caller named `principal` holding `roles`.
    pub fn new(principal: Principal, roles: impl IntoIterator<Item = Role>) -> Self {
        Self {
            principal,
            roles: roles.into_iter().collect(),
        }
    }

    /// The caller when authentication is off: `anonymous`, who may do
    /// everything.
    pub fn unrestricted() -> Self {
        Self::new(Principal::anonymous(), [Role::Admin])
    }

    /// Who the caller is.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// Whether the caller holds `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The caller's roles, in a fixed order.
    pub fn roles(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_their_names_and_unknown_ones_do_not() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("groups.owner"), None);
        assert_eq!(Role::parse("GROUPS.ADMIN"), None);
        assert_eq!(Role::parse(""), None);
    }

    #[test]
    fn the_unrestricted_caller_is_an_anonymous_admin() {
        let caller = Caller::unrestricted();
        assert_eq!(caller.principal().as_str(), "anonymous");
        assert!(caller.has(Role::Admin));
        assert!(!caller.has(Role::Creator));
    }
}
