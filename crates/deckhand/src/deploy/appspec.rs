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

use serde_json::{json, Map, Value};

/// What the AppSpec takes from the service: where the load balancer sends traffic, and how
/// its tasks are placed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Target {
    pub container: String,
    pub port: i32,
    pub platform_version: Option<String>,
    /// `AwsvpcConfiguration` as the AppSpec spells it.
    pub network: Option<Value>,
    /// `CapacityProviderStrategy` entries as the AppSpec spells them.
    pub capacity_providers: Vec<Value>,
}

impl Target {
    /// The service's first load balancer and placement; an error when it has no load balancer
    /// (CodeDeploy shifts traffic between the task sets behind one).
    pub fn of(view: &crate::aws::ecs::ServiceView) -> Result<Target, String> {
        let Some((container, port)) = view.load_balancers.first().cloned() else {
            return Err(format!(
                "service {} has no load balancer with a container name and port: a CodeDeploy \
                 blue/green deployment shifts traffic behind one",
                view.name
            ));
        };
        let p = &view.placement;
        let network = p
            .network
            .as_ref()
            .and_then(|n| n.awsvpc_configuration())
            .map(|a| {
                let mut v = json!({
                    "Subnets": a.subnets(),
                    "SecurityGroups": a.security_groups(),
                });
                if let Some(ip) = a.assign_public_ip() {
                    v["AssignPublicIp"] = json!(ip.as_str());
                }
                json!({"AwsvpcConfiguration": v})
            });
        Ok(Target {
            container,
            port,
            platform_version: p.platform_version.clone(),
            network,
            capacity_providers: p
                .capacity_providers
                .iter()
                .map(|c| {
                    json!({
                        "CapacityProvider": c.capacity_provider(),
                        "Base": c.base(),
                        "Weight": c.weight(),
                    })
                })
                .collect(),
        })
    }
}

/// The AppSpec deckhand builds: the new task definition behind the service's load balancer,
/// placed as the service is, with the hooks named.
pub fn build(target: &Target, task_definition: &str, hooks: &[(String, String)]) -> Value {
    let mut properties = Map::new();
    properties.insert("TaskDefinition".into(), json!(task_definition));
    properties.insert(
        "LoadBalancerInfo".into(),
        json!({"ContainerName": target.container, "ContainerPort": target.port}),
    );
    if let Some(v) = &target.platform_version {
        properties.insert("PlatformVersion".into(), json!(v));
    }
    if let Some(n) = &target.network {
        properties.insert("NetworkConfiguration".into(), n.clone());
    }
    if !target.capacity_providers.is_empty() {
        properties.insert(
            "CapacityProviderStrategy".into(),
            json!(target.capacity_providers),
        );
    }
    let mut spec = json!({
        "version": 0.0,
        "Resources": [{"TargetService": {"Type": "AWS::ECS::Service", "Properties": properties}}],
    });
    if !hooks.is_empty() {
        spec["Hooks"] = hooks.iter().map(|(e, f)| json!({ e: f })).collect();
    }
    spec
}

/// The user's own AppSpec with the new task definition in its target service: the one change
/// deckhand makes to it.
pub fn with_task_definition(file: &Value, task_definition: &str) -> Result<Value, String> {
    let mut spec = file.clone();
    let properties = spec
        .get_mut("Resources")
        .and_then(|r| r.get_mut(0))
        .and_then(|r| r.get_mut("TargetService"))
        .and_then(|t| t.as_object_mut())
        .map(|t| t.entry("Properties").or_insert_with(|| json!({})))
        .and_then(|p| p.as_object_mut())
        .ok_or("the AppSpec has no Resources[0].TargetService.Properties to put the task definition in")?;
    properties.insert("TaskDefinition".into(), json!(task_definition));
    Ok(spec)
}

/// The task definition an AppSpec deploys.
pub fn task_definition(spec: &Value) -> Option<&str> {
    spec.pointer("/Resources/0/TargetService/Properties/TaskDefinition")
        .and_then(Value::as_str)
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

    #[test]
    fn the_appspec_carries_the_load_balancer_placement_and_hooks() {
        let target = Target {
            container: "app".into(),
            port: 8080,
            platform_version: Some("1.4.0".into()),
            network: Some(
                json!({"AwsvpcConfiguration": {"Subnets": ["s-1"], "SecurityGroups": []}}),
            ),
            capacity_providers: vec![
                json!({"CapacityProvider": "FARGATE", "Base": 0, "Weight": 1}),
            ],
        };
        let hooks = vec![("BeforeAllowTraffic".to_string(), "check".to_string())];
        let spec = build(&target, "arn:td/web:2", &hooks);
        let props = &spec["Resources"][0]["TargetService"]["Properties"];
        assert_eq!(
            spec["Resources"][0]["TargetService"]["Type"],
            "AWS::ECS::Service"
        );
        assert_eq!(props["TaskDefinition"], "arn:td/web:2");
        assert_eq!(
            props["LoadBalancerInfo"],
            json!({"ContainerName": "app", "ContainerPort": 8080})
        );
        assert_eq!(props["PlatformVersion"], "1.4.0");
        assert_eq!(
            props["NetworkConfiguration"]["AwsvpcConfiguration"]["Subnets"],
            json!(["s-1"])
        );
        assert_eq!(
            props["CapacityProviderStrategy"][0]["CapacityProvider"],
            "FARGATE"
        );
        assert_eq!(spec["Hooks"], json!([{"BeforeAllowTraffic": "check"}]));
        assert_eq!(task_definition(&spec), Some("arn:td/web:2"));

        let bare = build(
            &Target {
                container: "app".into(),
                port: 80,
                ..Target::default()
            },
            "td",
            &[],
        );
        let props = bare["Resources"][0]["TargetService"]["Properties"]
            .as_object()
            .unwrap();
        assert_eq!(props.len(), 2, "{props:?}");
        assert!(bare.get("Hooks").is_none());
    }

    #[test]
    fn a_users_appspec_only_gets_the_task_definition() {
        let file = json!({"version": 0.0, "Resources": [{"TargetService": {"Type": "AWS::ECS::Service",
            "Properties": {"TaskDefinition": "<TASK_DEFINITION>", "LoadBalancerInfo": {"ContainerName": "x", "ContainerPort": 1}}}}],
            "Hooks": [{"AfterInstall": "f"}]});
        let out = with_task_definition(&file, "arn:td/web:9").unwrap();
        assert_eq!(task_definition(&out), Some("arn:td/web:9"));
        let mut back = out.clone();
        back["Resources"][0]["TargetService"]["Properties"]["TaskDefinition"] =
            json!("<TASK_DEFINITION>");
        assert_eq!(back, file);
        assert!(with_task_definition(&json!({"version": 0.0}), "td").is_err());
    }
}
