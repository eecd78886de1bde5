//! Choosing revisions from a service's past (pure): the last good one to roll back to, what a
//! `--to` argument names, and which old revisions `--keep-revisions` may deregister.

pub use crate::aws::types::family_of;

/// The revision number of a task definition ARN or `family:revision` reference.
pub fn revision_of(reference: &str) -> Option<u32> {
    reference.rsplit_once(':')?.1.parse().ok()
}

/// The newest task definition of a successful deployment that is not the one running now.
/// `successful` is newest first.
pub fn last_good<'a>(current: &str, successful: &'a [String]) -> Option<&'a str> {
    successful
        .iter()
        .map(String::as_str)
        .find(|td| !same_revision(td, current))
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
    fn the_last_good_revision_skips_the_current_one() {
        // Newest first: 5 is running now, 4 failed (not listed), 3 was good before it.
        let successful = arns(&[5, 3, 2]);
        assert_eq!(
            last_good(&format!("{ARN}/web:5"), &successful),
            Some(successful[1].as_str())
        );
        // The current revision failed and is not in the list: the newest good one is the answer.
        assert_eq!(
            last_good(&format!("{ARN}/web:6"), &successful),
            Some(successful[0].as_str())
        );
        assert_eq!(last_good(&format!("{ARN}/web:5"), &arns(&[5])), None);
        assert_eq!(last_good("web:1", &[]), None);
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
