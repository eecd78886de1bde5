//! CodeDeploy's side of a blue/green ECS deploy, as pure data: the lifecycle events an ECS
//! deployment goes through, the ones a hook can be named for, and the AppSpec deckhand sends.

/// The lifecycle events of an ECS blue/green deployment, in the order CodeDeploy runs them
/// (the ECS AppSpec "hooks" section): events are compared by this order, as a poll can miss
/// the short ones.
pub const EVENTS: [&str; 8] = [
    "BeforeInstall",
    "Install",
    "AfterInstall",
    "AllowTestTraffic",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AllowTraffic",
    "AfterAllowTraffic",
];

/// The events a Lambda hook can be named for (`--codedeploy-hook EVENT=FUNCTION`).
pub const HOOK_EVENTS: [&str; 5] = [
    "BeforeInstall",
    "AfterInstall",
    "AfterAllowTestTraffic",
    "BeforeAllowTraffic",
    "AfterAllowTraffic",
];

/// The canonical spelling of a lifecycle event named in any case (`afterallowtesttraffic`).
pub fn event(name: &str) -> Option<&'static str> {
    EVENTS
        .iter()
        .find(|e| e.eq_ignore_ascii_case(name.trim()))
        .copied()
}

/// Where `event` comes in [`EVENTS`].
pub fn event_order(event: &str) -> Option<usize> {
    EVENTS.iter().position(|e| *e == event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_named_in_any_case_and_ordered() {
        assert_eq!(
            event("afterallowtesttraffic"),
            Some("AfterAllowTestTraffic")
        );
        assert_eq!(event(" Install "), Some("Install"));
        assert_eq!(event("BAKE_TIME"), None);
        assert!(event_order("Install") < event_order("AllowTraffic"));
        for h in HOOK_EVENTS {
            assert!(event_order(h).is_some(), "{h}");
        }
    }
}
