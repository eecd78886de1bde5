//! Deploy building blocks against real services: registering a rendered task definition keeps
//! every field, on the sandbox and on moto.

use deckhand::deploy::taskdef;
use serde_json::json;

use crate::bed::Bed;

/// DescribeTaskDefinition output with read-only fields, nulls, tags and a field no SDK models.
fn described(family: &str, image: &str) -> String {
    json!({
        "taskDefinition": {
            "taskDefinitionArn": format!("arn:aws:ecs:us-east-1:123456789012:task-definition/{family}:7"),
            "family": family,
            "revision": 7,
            "status": "ACTIVE",
            "registeredAt": 1_700_000_000.5,
            "requiresAttributes": [],
            "compatibilities": ["EC2"],
            "ephemeralStorage": null,
            "someFutureField": {"nested": [1, {"x": true}]},
            "containerDefinitions": [
                {"name": "web", "image": image, "essential": true, "memory": 32, "command": ["sleep", "600"]},
                {"name": "sidecar", "image": "busybox:1", "essential": false, "memory": 16}
            ]
        },
        "tags": [{"key": "team", "value": "core"}]
    })
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rendered_task_definition_is_registered_field_for_field() {
    let bed = Bed::get();
    let (sandbox, _) = crate::sandbox::sandbox(8192).await;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(sandbox.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .load()
        .await;
    let mut td = taskdef::parse(&described("web", "127.0.0.1:1/web:old")).unwrap();
    let chosen = td.select(&[], "127.0.0.1:1/web").unwrap();
    td = td.with_image(&chosen, &bed.base_image);
    td.tag("deckhand:sha", "0123456789abcdef0123456789abcdef01234567");
    let registered = deckhand::aws::ecs::register_task_definition(&config, &td.request())
        .await
        .unwrap();
    assert_eq!(registered.revision, 1);
    assert!(
        registered.arn.ends_with(":task-definition/web:1"),
        "{}",
        registered.arn
    );

    let state = sandbox.shared.state.lock().await;
    let stored = state.task_definition(&registered.arn).unwrap();
    assert_eq!(
        stored.body["someFutureField"],
        json!({"nested": [1, {"x": true}]})
    );
    assert_eq!(
        stored.body["containerDefinitions"][0]["image"],
        bed.base_image.as_str()
    );
    assert_eq!(stored.body["containerDefinitions"][1]["image"], "busybox:1");
    assert!(stored.body.get("ephemeralStorage").is_none() && stored.body.get("revision").is_none());
    let tags = stored.tags.to_string();
    assert!(
        tags.contains("team") && tags.contains("deckhand:sha"),
        "{tags}"
    );
    drop(state);
    sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_accepts_a_task_definition_from_describe_output() {
    Bed::get();
    // AWS_ENDPOINT_URL from the bed points at moto.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let family = format!("it-{}", crate::bed::unique("td")).replace('_', "-");
    let td = taskdef::parse(&described(&family, "127.0.0.1:1/web:v1")).unwrap();
    assert_eq!(td.family(), family);
    let first = deckhand::aws::ecs::register_task_definition(&config, &td.request())
        .await
        .unwrap();
    let second = deckhand::aws::ecs::register_task_definition(&config, &td.request())
        .await
        .unwrap();
    assert_eq!((first.revision, second.revision), (1, 2));
    let ecs = aws_sdk_ecs::Client::new(&config);
    let out = ecs
        .describe_task_definition()
        .task_definition(&second.arn)
        .send()
        .await
        .unwrap();
    let containers = out.task_definition().unwrap().container_definitions();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[0].image(), Some("127.0.0.1:1/web:v1"));
}
