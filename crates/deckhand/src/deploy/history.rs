//! Choosing revisions from a service's past (pure): the verified one to roll back to, what a
//! `--to` argument names, and which old revisions `--keep-revisions` may deregister.

pub use crate::aws::types::family_of;

/// The tag on each revision deckhand registers: the revision the service ran when it was
/// deployed, where `deckhand rollback` goes from it. Revisions carry it, so any runner knows.
pub const PREVIOUS_TAG: &str = "deckhand:previous";

/// The tag deckhand sets once it saw a revision stable with tasks running (seconds since the
/// epoch): only such a revision is a rollback target.
pub const VERIFIED_TAG: &str = "deckhand:verified";

/// The tag on a revision registered only to run a one-off task (`deckhand run --image`, the
/// pre-deploy gate): it is never verified, so never a rollback target, whatever ECS's history
/// says of it.
pub const ONE_OFF_TAG: &str = "deckhand:one-off";

/// The value of [`VERIFIED_TAG`] for a moment.
pub fn verified_value(at: std::time::SystemTime) -> String {
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
        .to_string()
}

/// What a revision's tags say about its past.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Marks {
    /// The revision live before it, when deckhand deployed it.
    pub previous: Option<String>,
    /// deckhand saw it stable with tasks running.
    pub verified: bool,
    /// Registered for a one-off task ([`ONE_OFF_TAG`]).
    pub one_off: bool,
}

impl Marks {
    pub fn from_tags(tags: &[(String, String)]) -> Self {
        let get = |key: &str| {
            tags.iter()
                .find(|(k, v)| k == key && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        Marks {
            previous: get(PREVIOUS_TAG),
            verified: get(VERIFIED_TAG).is_some(),
            one_off: get(ONE_OFF_TAG).is_some(),
        }
    }
}

/// Whether `revision` counts as verified (pure). One deckhand deployed (it has a
/// [`PREVIOUS_TAG`]) is verified only by deckhand's own mark: deckhand saw whether tasks ran,
/// which ECS's history does not keep. Any other is verified by a SUCCESSFUL service deployment
/// of it (`by_ecs`) too. A one-off task's revision never is.
pub fn verified(revision: &str, marks: &Marks, by_ecs: &[String]) -> bool {
    !marks.one_off
        && (marks.verified
            || marks.previous.is_none() && by_ecs.iter().any(|td| same_revision(td, revision)))
}

/// Marks `td` as a one-off task's revision (pure): tagged [`ONE_OFF_TAG`], without the deploy
/// marks it may have copied from the revision it was made from, so nothing takes it for a
/// deployed or verified one.
pub fn mark_one_off(td: &mut crate::deploy::taskdef::TaskDef, purpose: &str) {
    td.untag(VERIFIED_TAG);
    td.untag(PREVIOUS_TAG);
    td.tag(ONE_OFF_TAG, purpose);
}

/// For a revision deckhand did not deploy (no [`PREVIOUS_TAG`]): the newest verified revision
/// of its family registered before it (pure; `by_ecs` newest first). Never a newer one, so
/// repeated rollbacks walk back.
pub fn older_verified<'a>(current: &str, by_ecs: &'a [String]) -> Option<&'a str> {
    let n = revision_of(current)?;
    by_ecs
        .iter()
        .map(String::as_str)
        .filter(|td| family_of(td) == family_of(current))
        .filter(|td| revision_of(td).is_some_and(|r| r < n))
        .max_by_key(|td| revision_of(td))
}

/// The revision number of a task definition ARN or `family:revision` reference.
pub fn revision_of(reference: &str) -> Option<u32> {
    reference.rsplit_once(':')?.1.parse().ok()
}

/// What `--to` names: an ARN or `family:N` as given, or a bare `N` in `current`'s family.
pub fn resolve_to(spec: &str, current: &str) -> Result<String, String> {
    let spec = spec.trim();
    if spec.starts_with("arn:") {
        return Ok(spec.to_string());
    }
    if let Ok(n) = spec.parse::<u32>() {
        if n == 0 {
            return Err("--to 0: revisions start at 1".into());
        }
        return Ok(format!("{}:{n}", family_of(current)));
    }
    match spec.split_once(':') {
        Some((family, n)) if !family.is_empty() && n.parse::<u32>().is_ok_and(|n| n > 0) => {
            Ok(spec.to_string())
        }
        _ => Err(format!(
            "--to {spec:?}: expected a revision number, family:revision, or a task definition ARN"
        )),
    }
}

/// True when two references (ARN or `family:N`) name the same revision.
pub fn same_revision(a: &str, b: &str) -> bool {
    family_of(a) == family_of(b) && revision_of(a).is_some() && revision_of(a) == revision_of(b)
}

/// The revisions to deregister: all but the newest `keep` of `active` (newest first), and never
/// one in `protect` (the live revision, the rollback target).
pub fn to_deregister(active: &[String], keep: usize, protect: &[&str]) -> Vec<String> {
    active
        .iter()
        .skip(keep)
        .filter(|arn| !protect.iter().any(|p| same_revision(arn, p)))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:ecs:eu-west-1:123456789012:task-definition";

    fn arns(revisions: &[u32]) -> Vec<String> {
        revisions.iter().map(|r| format!("{ARN}/web:{r}")).collect()
    }

    #[test]
    fn families_and_revisions_are_read_from_arns_and_short_names() {
        assert_eq!(family_of(&format!("{ARN}/web-app:12")), "web-app");
        assert_eq!(family_of("web:3"), "web");
        assert_eq!(family_of("web"), "web");
        assert_eq!(revision_of(&format!("{ARN}/web:12")), Some(12));
        assert_eq!(revision_of("web"), None);
        assert!(same_revision(&format!("{ARN}/web:3"), "web:3"));
        assert!(!same_revision("web:3", "api:3"));
        assert!(!same_revision("web", "web"));
    }

    #[test]
    fn only_revisions_seen_stable_with_tasks_are_verified() {
        let by_ecs = arns(&[5, 3]);
        let none = Marks::default();
        assert!(verified("web:5", &none, &by_ecs));
        assert!(!verified("web:4", &none, &by_ecs));
        let marked = Marks::from_tags(&[(VERIFIED_TAG.into(), "1700000000".into())]);
        assert!(verified("web:4", &marked, &[]));
        let previous = Marks::from_tags(&[
            (PREVIOUS_TAG.into(), format!("{ARN}/web:3")),
            ("deckhand:sha".into(), "abc".into()),
        ]);
        assert_eq!(previous.previous, Some(format!("{ARN}/web:3")));
        assert!(!previous.verified);
        // deckhand deployed it and never saw it verified (desiredCount 0): ECS's SUCCESSFUL
        // deployment of it does not count.
        assert!(!verified("web:5", &previous, &by_ecs));
        // A one-off task's revision: never, even marked verified or deployed by someone else.
        let one_off = Marks::from_tags(&[
            (ONE_OFF_TAG.into(), "run".into()),
            (VERIFIED_TAG.into(), "1700000000".into()),
        ]);
        assert!(one_off.one_off);
        assert!(!verified("web:5", &one_off, &by_ecs));
    }

    #[test]
    fn a_one_off_revision_loses_the_deploy_marks_it_was_copied_with() {
        let mut td = crate::deploy::taskdef::parse(
            r#"{"taskDefinition": {"family": "web",
                "containerDefinitions": [{"name": "app", "image": "web:1"}]},
                "tags": [{"key": "deckhand:verified", "value": "1"},
                         {"key": "deckhand:previous", "value": "web:1"},
                         {"key": "team", "value": "core"}]}"#,
        )
        .unwrap();
        mark_one_off(&mut td, "run");
        assert_eq!(
            td.tags,
            vec![
                ("team".to_string(), "core".to_string()),
                (ONE_OFF_TAG.to_string(), "run".to_string())
            ]
        );
        let marks = Marks::from_tags(&td.tags);
        assert!(marks.one_off && !marks.verified && marks.previous.is_none());
    }

    #[test]
    fn without_deckhands_marks_a_rollback_goes_to_an_older_verified_revision_only() {
        // Newest first: 22 and 1 both succeeded; the service runs 1 again after a rollback.
        let by_ecs = arns(&[1, 22, 1]);
        assert_eq!(
            older_verified(&format!("{ARN}/web:22"), &by_ecs),
            Some(by_ecs[0].as_str())
        );
        assert_eq!(
            older_verified(&format!("{ARN}/web:1"), &by_ecs),
            None,
            "never forward to 22"
        );
        assert_eq!(
            older_verified(&format!("{ARN}/web:9"), &arns(&[3, 7, 12])),
            Some(format!("{ARN}/web:7").as_str())
        );
        assert_eq!(older_verified("api:9", &arns(&[3])), None, "another family");
        assert_eq!(older_verified("web", &arns(&[3])), None);
    }

    #[test]
    fn to_names_a_revision_in_the_services_family_or_anything_explicit() {
        let current = format!("{ARN}/web:7");
        assert_eq!(resolve_to("4", &current).unwrap(), "web:4");
        assert_eq!(resolve_to("api:2", &current).unwrap(), "api:2");
        assert_eq!(
            resolve_to(&format!("{ARN}/web:3"), &current).unwrap(),
            format!("{ARN}/web:3")
        );
        for bad in ["0", "web:", "web:x", ":3", "latest", ""] {
            assert!(resolve_to(bad, &current).is_err(), "{bad}");
        }
    }

    #[test]
    fn old_revisions_go_but_never_the_live_one_or_the_rollback_target() {
        let active = arns(&[9, 8, 7, 6, 5, 4]);
        assert_eq!(to_deregister(&active, 3, &[]), arns(&[6, 5, 4]));
        // The live revision is the newest; the rollback target (5) is kept even beyond N.
        assert_eq!(
            to_deregister(&active, 2, &[&active[0], "web:5"]),
            arns(&[7, 6, 4])
        );
        assert!(to_deregister(&active, 10, &[]).is_empty());
    }
}
