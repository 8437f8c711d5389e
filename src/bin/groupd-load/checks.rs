//! The checks of each reply: pure functions of the request's expectations
//! and the reply, each returning what was wrong. A wrong answer is counted
//! apart from the right ones, never as throughput.

use groupd::pb;

/// Why a reply was wrong, as counted (a short, fixed text per reason, so
/// that counts add up).
pub type Wrong = String;

/// GetGroup in the BASIC view of group `asked`, one of `dataset`'s groups.
pub fn get(group: &pb::Group, asked: &str, dataset: &str) -> Result<(), Wrong> {
    if group.id != asked {
        return Err("another group than the one asked for".into());
    }
    if !group.members.is_empty() || !group.admins.is_empty() {
        return Err("members in the BASIC view".into());
    }
    if group.state != i32::from(pb::State::Active) {
        return Err("not an active group".into());
    }
    if group.labels.get("load").map(String::as_str) != Some(dataset) {
        return Err("not labelled as the dataset's".into());
    }
    if group.etag.is_empty() {
        return Err("no etag".into());
    }
    Ok(())
}

/// A page of ListGroups (default order: create time, then id) asked for
/// with `page_size`, on a server holding at least `at_least` live groups.
pub fn list(page: &pb::ListGroupsResponse, page_size: usize, at_least: usize) -> Result<(), Wrong> {
    if page.groups.len() > page_size {
        return Err("more groups than the page size".into());
    }
    if !page.next_page_token.is_empty() && page.groups.len() != page_size {
        return Err("a short page before the last".into());
    }
    if page.groups.is_empty() && !page.next_page_token.is_empty() {
        return Err("an empty page with a next page".into());
    }
    if usize::try_from(page.total_size).unwrap_or(0) < at_least {
        return Err("total_size below the dataset's size".into());
    }
    if page
        .groups
        .iter()
        .any(|group| !group.members.is_empty() || !group.admins.is_empty())
    {
        return Err("members in the BASIC view".into());
    }
    let key = |group: &pb::Group| {
        let time = group
            .create_time
            .as_ref()
            .map_or((i64::MIN, i32::MIN), |t| (t.seconds, t.nanos));
        (time, group.id.clone())
    };
    if page
        .groups
        .windows(2)
        .any(|pair| key(&pair[0]) >= key(&pair[1]))
    {
        return Err("groups out of create-time order".into());
    }
    Ok(())
}

/// Transitive CheckMembership of a principal found through `path`, the
/// groups from its own group up to the asked one.
pub fn membership(reply: &pb::CheckMembershipResponse, path: &[String]) -> Result<(), Wrong> {
    if !reply.is_member {
        return Err("is_member false".into());
    }
    if reply.direct {
        return Err("direct, expected transitive".into());
    }
    if reply.path.len() != path.len() {
        return Err(format!(
            "a path of {} groups, expected {}",
            reply.path.len(),
            path.len()
        ));
    }
    if reply.path != path {
        return Err("a path through other groups".into());
    }
    Ok(())
}

/// Transitive ListMemberGroups of a principal whose groups are `expected`,
/// sorted by id, all on one page.
pub fn member_groups(
    reply: &pb::ListMemberGroupsResponse,
    expected: &[String],
) -> Result<(), Wrong> {
    if reply.groups.len() != expected.len() {
        return Err(format!(
            "{} groups, expected {}",
            reply.groups.len(),
            expected.len()
        ));
    }
    if !reply
        .groups
        .iter()
        .map(|group| &group.id)
        .eq(expected.iter())
    {
        return Err("other groups than the principal's".into());
    }
    if !reply.next_page_token.is_empty() {
        return Err("a next page after every group".into());
    }
    Ok(())
}

/// UpdateGroup of `id`'s description to `description`; `previous_etag` is
/// the etag the previous update of this group answered, if any.
pub fn update(
    group: &pb::Group,
    id: &str,
    description: &str,
    previous_etag: Option<&str>,
) -> Result<(), Wrong> {
    if group.id != id {
        return Err("another group than the one updated".into());
    }
    if group.description != description {
        return Err("the description is not the new value".into());
    }
    if group.etag.is_empty() || previous_etag == Some(group.etag.as_str()) {
        return Err("the etag did not change".into());
    }
    Ok(())
}

/// AddGroupMembers of one new principal to `id`, whose previous addition
/// answered `previous_count` members, if any.
pub fn add(group: &pb::Group, id: &str, previous_count: Option<i32>) -> Result<(), Wrong> {
    if group.id != id {
        return Err("another group than the one added to".into());
    }
    if !group.members.is_empty() {
        return Err("members in the reply, which is the BASIC view".into());
    }
    if let Some(previous) = previous_count
        && group.member_count != previous.saturating_add(1)
    {
        return Err("member_count did not grow by one".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use groupd::pb;

    fn group(id: &str) -> pb::Group {
        pb::Group {
            id: id.to_owned(),
            state: pb::State::Active.into(),
            labels: [("load".to_owned(), "ds".to_owned())].into(),
            etag: "\"v1\"".to_owned(),
            ..Default::default()
        }
    }

    fn created(group: pb::Group, seconds: i64) -> pb::Group {
        pb::Group {
            create_time: Some(prost_types::Timestamp { seconds, nanos: 0 }),
            ..group
        }
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    #[test]
    fn get_accepts_the_group_asked_for_and_refuses_anything_else() {
        assert_eq!(super::get(&group("a"), "a", "ds"), Ok(()));
        assert_eq!(
            super::get(&group("b"), "a", "ds").unwrap_err(),
            "another group than the one asked for"
        );
        let mut full = group("a");
        full.members.push(pb::Member { id: "p".into() });
        assert_eq!(
            super::get(&full, "a", "ds").unwrap_err(),
            "members in the BASIC view"
        );
        let mut deleted = group("a");
        deleted.state = pb::State::Deleted.into();
        assert_eq!(
            super::get(&deleted, "a", "ds").unwrap_err(),
            "not an active group"
        );
        assert_eq!(
            super::get(&group("a"), "a", "other").unwrap_err(),
            "not labelled as the dataset's"
        );
        let mut no_etag = group("a");
        no_etag.etag.clear();
        assert_eq!(super::get(&no_etag, "a", "ds").unwrap_err(), "no etag");
    }

    #[test]
    fn list_checks_size_order_and_total() {
        let page = |groups: Vec<pb::Group>, next: &str, total: i32| pb::ListGroupsResponse {
            groups,
            next_page_token: next.to_owned(),
            total_size: total,
            ..Default::default()
        };
        let two = vec![created(group("b"), 1), created(group("a"), 2)];
        assert_eq!(super::list(&page(two.clone(), "t", 10), 2, 10), Ok(()));
        // The last page may be short; one before it may not.
        assert_eq!(super::list(&page(two[..1].to_vec(), "", 10), 2, 10), Ok(()));
        assert_eq!(
            super::list(&page(two[..1].to_vec(), "t", 10), 2, 10).unwrap_err(),
            "a short page before the last"
        );
        assert_eq!(
            super::list(&page(two.clone(), "", 10), 1, 10).unwrap_err(),
            "more groups than the page size"
        );
        assert_eq!(
            super::list(&page(two.clone(), "", 9), 2, 10).unwrap_err(),
            "total_size below the dataset's size"
        );
        let reversed = vec![two[1].clone(), two[0].clone()];
        assert_eq!(
            super::list(&page(reversed, "", 10), 2, 10).unwrap_err(),
            "groups out of create-time order"
        );
        // Equal create times are ordered by id.
        let tied = vec![created(group("a"), 1), created(group("b"), 1)];
        assert_eq!(super::list(&page(tied.clone(), "", 10), 2, 10), Ok(()));
        let tied_reversed = vec![tied[1].clone(), tied[0].clone()];
        assert!(super::list(&page(tied_reversed, "", 10), 2, 10).is_err());
    }

    #[test]
    fn membership_wants_the_whole_transitive_path() {
        let path = ids(&["c2", "c1", "c0"]);
        let reply = |is_member, direct, path: &[&str]| pb::CheckMembershipResponse {
            is_member,
            direct,
            path: ids(path),
        };
        assert_eq!(
            super::membership(&reply(true, false, &["c2", "c1", "c0"]), &path),
            Ok(())
        );
        assert_eq!(
            super::membership(&reply(false, false, &[]), &path).unwrap_err(),
            "is_member false"
        );
        assert_eq!(
            super::membership(&reply(true, true, &["c0"]), &path).unwrap_err(),
            "direct, expected transitive"
        );
        assert_eq!(
            super::membership(&reply(true, false, &["c1", "c0"]), &path).unwrap_err(),
            "a path of 2 groups, expected 3"
        );
        assert_eq!(
            super::membership(&reply(true, false, &["c2", "x", "c0"]), &path).unwrap_err(),
            "a path through other groups"
        );
    }

    #[test]
    fn member_groups_wants_exactly_the_principals_groups() {
        let expected = ids(&["a", "b"]);
        let reply = |groups: &[&str], next: &str| pb::ListMemberGroupsResponse {
            groups: groups.iter().map(|id| group(id)).collect(),
            next_page_token: next.to_owned(),
        };
        assert_eq!(
            super::member_groups(&reply(&["a", "b"], ""), &expected),
            Ok(())
        );
        assert_eq!(
            super::member_groups(&reply(&["a"], ""), &expected).unwrap_err(),
            "1 groups, expected 2"
        );
        assert_eq!(
            super::member_groups(&reply(&["a", "c"], ""), &expected).unwrap_err(),
            "other groups than the principal's"
        );
        assert_eq!(
            super::member_groups(&reply(&["a", "b"], "t"), &expected).unwrap_err(),
            "a next page after every group"
        );
    }

    #[test]
    fn update_wants_the_new_value_and_a_new_etag() {
        let mut updated = group("u");
        updated.description = "new".into();
        assert_eq!(super::update(&updated, "u", "new", None), Ok(()));
        assert_eq!(super::update(&updated, "u", "new", Some("\"v0\"")), Ok(()));
        assert_eq!(
            super::update(&updated, "u", "newer", None).unwrap_err(),
            "the description is not the new value"
        );
        assert_eq!(
            super::update(&updated, "u", "new", Some("\"v1\"")).unwrap_err(),
            "the etag did not change"
        );
        assert_eq!(
            super::update(&updated, "v", "new", None).unwrap_err(),
            "another group than the one updated"
        );
    }

    #[test]
    fn add_wants_one_more_member() {
        let mut added = group("a");
        added.member_count = 5;
        assert_eq!(super::add(&added, "a", None), Ok(()));
        assert_eq!(super::add(&added, "a", Some(4)), Ok(()));
        assert_eq!(
            super::add(&added, "a", Some(5)).unwrap_err(),
            "member_count did not grow by one"
        );
        assert_eq!(
            super::add(&added, "b", Some(4)).unwrap_err(),
            "another group than the one added to"
        );
        added.members.push(pb::Member { id: "p".into() });
        assert_eq!(
            super::add(&added, "a", Some(4)).unwrap_err(),
            "members in the reply, which is the BASIC view"
        );
    }
}
