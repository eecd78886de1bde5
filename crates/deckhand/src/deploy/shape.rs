//! Field names of a task-definition file checked against the SDK's model, so typos fail (pure).

use serde_json::Value;

use crate::deploy::taskdef::READ_ONLY;

/// A request shape of the SDK's model: its name there and its members, by JSON name.
#[derive(Debug)]
pub struct Shape {
    pub name: &'static str,
    pub members: &'static [(&'static str, Member)],
}

/// What a member holds, as far as its names go.
#[derive(Debug, Clone, Copy)]
pub enum Member {
    /// A string, number or boolean, or a list of them: no names inside.
    Leaf,
    /// A map: its keys are the user's own (`dockerLabels`, `logConfiguration.options`, …).
    Map,
    /// An object of this shape (a union too: one member of it).
    Struct(&'static Shape),
    /// A list of objects of this shape.
    ListOf(&'static Shape),
}

impl Shape {
    /// The member named `name`, exactly.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.members
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, m)| *m)
    }
}

/// DescribeTaskDefinition's output, which a file may be: the task definition and its tags.
pub static DESCRIBE_TASK_DEFINITION_OUTPUT: Shape = Shape {
    name: "DescribeTaskDefinitionOutput",
    members: &[
        (
            "taskDefinition",
            Member::Struct(&REGISTER_TASK_DEFINITION_INPUT),
        ),
        ("tags", Member::ListOf(&TAG)),
    ],
};

/// A field name the model does not know: where it is, and the known name it is closest to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// e.g. `$.containerDefinitions[0].healthcheck`.
    pub at: String,
    /// The shape it was found in, e.g. `ContainerDefinition`.
    pub within: &'static str,
    /// e.g. `healthCheck`.
    pub suggestion: Option<&'static str>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.suggestion {
            Some(s) => write!(f, "{} (did you mean `{s}`?)", self.at),
            None => write!(f, "{} (not a field of {})", self.at, self.within),
        }
    }
}

/// Every field of a task-definition file — RegisterTaskDefinition input, or DescribeTaskDefinition
/// output with or without its `{"taskDefinition": …, "tags": …}` wrapper — whose name the SDK's
/// model does not know, at any depth. Not reported: the read-only fields of described output
/// and fields set to `null` (both are dropped before registering, so nothing is lost), and the
/// keys of maps. Values are not looked at beyond the names inside them.
pub fn unknown_fields(file: &Value) -> Vec<Unknown> {
    let mut found = Vec::new();
    if let Value::Object(top) = file {
        let shape = if top.contains_key("taskDefinition") {
            &DESCRIBE_TASK_DEFINITION_OUTPUT
        } else {
            &REGISTER_TASK_DEFINITION_INPUT
        };
        object(top, shape, "$", &mut found);
    }
    found
}

fn object(
    fields: &serde_json::Map<String, Value>,
    shape: &'static Shape,
    at: &str,
    found: &mut Vec<Unknown>,
) {
    for (name, value) in fields {
        if value.is_null() {
            continue;
        }
        let here = field_path(at, name);
        match shape.member(name) {
            Some(Member::Struct(inner)) => {
                if let Value::Object(fields) = value {
                    object(fields, inner, &here, found);
                }
            }
            Some(Member::ListOf(inner)) => {
                for (i, item) in value.as_array().into_iter().flatten().enumerate() {
                    if let Value::Object(fields) = item {
                        object(fields, inner, &format!("{here}[{i}]"), found);
                    }
                }
            }
            Some(Member::Leaf | Member::Map) => {}
            None if std::ptr::eq(shape, &REGISTER_TASK_DEFINITION_INPUT)
                && READ_ONLY.contains(&name.as_str()) => {}
            None => found.push(Unknown {
                at: here,
                within: shape.name,
                suggestion: closest(name, shape.members.iter().map(|(n, _)| *n)),
            }),
        }
    }
}

/// `at.name`, or `at["name"]` when the name is not a plain identifier.
fn field_path(at: &str, name: &str) -> String {
    let plain = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain {
        format!("{at}.{name}")
    } else {
        format!("{at}[{}]", Value::String(name.to_string()))
    }
}

/// The known name `name` most likely meant: one that differs only in case, else the nearest by
/// edit distance (at most 2, or a third of the name's length), else one it is the start of
/// (`logConfig`); `None` when none is close.
fn closest(name: &str, known: impl Iterator<Item = &'static str> + Clone) -> Option<&'static str> {
    let lower = name.to_lowercase();
    if let Some(k) = known.clone().find(|k| k.to_lowercase() == lower) {
        return Some(k);
    }
    let limit = (lower.chars().count() / 3).max(2);
    let nearest = known
        .clone()
        .map(|k| (edit_distance(&lower, &k.to_lowercase()), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k);
    nearest.or_else(|| {
        known
            .clone()
            .find(|k| lower.chars().count() >= 4 && k.to_lowercase().starts_with(&lower))
    })
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

// The table: every shape reachable from RegisterTaskDefinitionInput in the aws-sdk-ecs source
// (`sdk_model` below checks it against the source the build uses), in the model's order.

/// RegisterTaskDefinition's request: the root of a task-definition file.
pub static REGISTER_TASK_DEFINITION_INPUT: Shape = Shape {
    name: "RegisterTaskDefinitionInput",
    members: &[
        ("family", Member::Leaf),
        ("taskRoleArn", Member::Leaf),
        ("executionRoleArn", Member::Leaf),
        ("networkMode", Member::Leaf),
        (
            "containerDefinitions",
            Member::ListOf(&CONTAINER_DEFINITION),
        ),
        ("volumes", Member::ListOf(&VOLUME)),
        (
            "placementConstraints",
            Member::ListOf(&TASK_DEFINITION_PLACEMENT_CONSTRAINT),
        ),
        ("requiresCompatibilities", Member::Leaf),
        ("cpu", Member::Leaf),
        ("memory", Member::Leaf),
        ("tags", Member::ListOf(&TAG)),
        ("pidMode", Member::Leaf),
        ("ipcMode", Member::Leaf),
        ("proxyConfiguration", Member::Struct(&PROXY_CONFIGURATION)),
        (
            "inferenceAccelerators",
            Member::ListOf(&INFERENCE_ACCELERATOR),
        ),
        ("ephemeralStorage", Member::Struct(&EPHEMERAL_STORAGE)),
        ("runtimePlatform", Member::Struct(&RUNTIME_PLATFORM)),
        ("enableFaultInjection", Member::Leaf),
    ],
};
static CONTAINER_DEFINITION: Shape = Shape {
    name: "ContainerDefinition",
    members: &[
        ("name", Member::Leaf),
        ("image", Member::Leaf),
        (
            "repositoryCredentials",
            Member::Struct(&REPOSITORY_CREDENTIALS),
        ),
        ("cpu", Member::Leaf),
        ("memory", Member::Leaf),
        ("memoryReservation", Member::Leaf),
        ("links", Member::Leaf),
        ("portMappings", Member::ListOf(&PORT_MAPPING)),
        ("essential", Member::Leaf),
        ("restartPolicy", Member::Struct(&CONTAINER_RESTART_POLICY)),
        ("entryPoint", Member::Leaf),
        ("command", Member::Leaf),
        ("environment", Member::ListOf(&KEY_VALUE_PAIR)),
        ("environmentFiles", Member::ListOf(&ENVIRONMENT_FILE)),
        ("mountPoints", Member::ListOf(&MOUNT_POINT)),
        ("volumesFrom", Member::ListOf(&VOLUME_FROM)),
        ("linuxParameters", Member::Struct(&LINUX_PARAMETERS)),
        ("secrets", Member::ListOf(&SECRET)),
        ("dependsOn", Member::ListOf(&CONTAINER_DEPENDENCY)),
        ("startTimeout", Member::Leaf),
        ("stopTimeout", Member::Leaf),
        ("versionConsistency", Member::Leaf),
        ("hostname", Member::Leaf),
        ("user", Member::Leaf),
        ("workingDirectory", Member::Leaf),
        ("disableNetworking", Member::Leaf),
        ("privileged", Member::Leaf),
        ("readonlyRootFilesystem", Member::Leaf),
        ("dnsServers", Member::Leaf),
        ("dnsSearchDomains", Member::Leaf),
        ("extraHosts", Member::ListOf(&HOST_ENTRY)),
        ("dockerSecurityOptions", Member::Leaf),
        ("interactive", Member::Leaf),
        ("pseudoTerminal", Member::Leaf),
        ("dockerLabels", Member::Map),
        ("ulimits", Member::ListOf(&ULIMIT)),
        ("logConfiguration", Member::Struct(&LOG_CONFIGURATION)),
        ("healthCheck", Member::Struct(&HEALTH_CHECK)),
        ("systemControls", Member::ListOf(&SYSTEM_CONTROL)),
        (
            "resourceRequirements",
            Member::ListOf(&RESOURCE_REQUIREMENT),
        ),
        (
            "firelensConfiguration",
            Member::Struct(&FIRELENS_CONFIGURATION),
        ),
        ("credentialSpecs", Member::Leaf),
    ],
};
static REPOSITORY_CREDENTIALS: Shape = Shape {
    name: "RepositoryCredentials",
    members: &[("credentialsParameter", Member::Leaf)],
};
static PORT_MAPPING: Shape = Shape {
    name: "PortMapping",
    members: &[
        ("containerPort", Member::Leaf),
        ("hostPort", Member::Leaf),
        ("protocol", Member::Leaf),
        ("name", Member::Leaf),
        ("appProtocol", Member::Leaf),
        ("containerPortRange", Member::Leaf),
    ],
};
static CONTAINER_RESTART_POLICY: Shape = Shape {
    name: "ContainerRestartPolicy",
    members: &[
        ("enabled", Member::Leaf),
        ("ignoredExitCodes", Member::Leaf),
        ("restartAttemptPeriod", Member::Leaf),
    ],
};
static KEY_VALUE_PAIR: Shape = Shape {
    name: "KeyValuePair",
    members: &[("name", Member::Leaf), ("value", Member::Leaf)],
};
static ENVIRONMENT_FILE: Shape = Shape {
    name: "EnvironmentFile",
    members: &[("value", Member::Leaf), ("type", Member::Leaf)],
};
static MOUNT_POINT: Shape = Shape {
    name: "MountPoint",
    members: &[
        ("sourceVolume", Member::Leaf),
        ("containerPath", Member::Leaf),
        ("readOnly", Member::Leaf),
    ],
};
static VOLUME_FROM: Shape = Shape {
    name: "VolumeFrom",
    members: &[
        ("sourceContainer", Member::Leaf),
        ("readOnly", Member::Leaf),
    ],
};
static LINUX_PARAMETERS: Shape = Shape {
    name: "LinuxParameters",
    members: &[
        ("capabilities", Member::Struct(&KERNEL_CAPABILITIES)),
        ("devices", Member::ListOf(&DEVICE)),
        ("initProcessEnabled", Member::Leaf),
        ("sharedMemorySize", Member::Leaf),
        ("tmpfs", Member::ListOf(&TMPFS)),
        ("maxSwap", Member::Leaf),
        ("swappiness", Member::Leaf),
    ],
};
static KERNEL_CAPABILITIES: Shape = Shape {
    name: "KernelCapabilities",
    members: &[("add", Member::Leaf), ("drop", Member::Leaf)],
};
static DEVICE: Shape = Shape {
    name: "Device",
    members: &[
        ("hostPath", Member::Leaf),
        ("containerPath", Member::Leaf),
        ("permissions", Member::Leaf),
    ],
};
static TMPFS: Shape = Shape {
    name: "Tmpfs",
    members: &[
        ("containerPath", Member::Leaf),
        ("size", Member::Leaf),
        ("mountOptions", Member::Leaf),
    ],
};
static SECRET: Shape = Shape {
    name: "Secret",
    members: &[("name", Member::Leaf), ("valueFrom", Member::Leaf)],
};
static CONTAINER_DEPENDENCY: Shape = Shape {
    name: "ContainerDependency",
    members: &[("containerName", Member::Leaf), ("condition", Member::Leaf)],
};
static HOST_ENTRY: Shape = Shape {
    name: "HostEntry",
    members: &[("hostname", Member::Leaf), ("ipAddress", Member::Leaf)],
};
static ULIMIT: Shape = Shape {
    name: "Ulimit",
    members: &[
        ("name", Member::Leaf),
        ("softLimit", Member::Leaf),
        ("hardLimit", Member::Leaf),
    ],
};
static LOG_CONFIGURATION: Shape = Shape {
    name: "LogConfiguration",
    members: &[
        ("logDriver", Member::Leaf),
        ("options", Member::Map),
        ("secretOptions", Member::ListOf(&SECRET)),
    ],
};
static HEALTH_CHECK: Shape = Shape {
    name: "HealthCheck",
    members: &[
        ("command", Member::Leaf),
        ("interval", Member::Leaf),
        ("timeout", Member::Leaf),
        ("retries", Member::Leaf),
        ("startPeriod", Member::Leaf),
    ],
};
static SYSTEM_CONTROL: Shape = Shape {
    name: "SystemControl",
    members: &[("namespace", Member::Leaf), ("value", Member::Leaf)],
};
static RESOURCE_REQUIREMENT: Shape = Shape {
    name: "ResourceRequirement",
    members: &[
        ("value", Member::Leaf),
        ("type", Member::Leaf),
        ("sharingStrategy", Member::Struct(&SHARING_STRATEGY)),
    ],
};
static SHARING_STRATEGY: Shape = Shape {
    name: "SharingStrategy",
    members: &[("nvidiaMps", Member::Struct(&NVIDIA_MPS_ALLOCATION))],
};
static NVIDIA_MPS_ALLOCATION: Shape = Shape {
    name: "NvidiaMpsAllocation",
    members: &[
        ("memory", Member::Leaf),
        ("maxComputePercent", Member::Leaf),
    ],
};
static FIRELENS_CONFIGURATION: Shape = Shape {
    name: "FirelensConfiguration",
    members: &[("type", Member::Leaf), ("options", Member::Map)],
};
static VOLUME: Shape = Shape {
    name: "Volume",
    members: &[
        ("name", Member::Leaf),
        ("host", Member::Struct(&HOST_VOLUME_PROPERTIES)),
        (
            "dockerVolumeConfiguration",
            Member::Struct(&DOCKER_VOLUME_CONFIGURATION),
        ),
        (
            "efsVolumeConfiguration",
            Member::Struct(&EFS_VOLUME_CONFIGURATION),
        ),
        (
            "s3filesVolumeConfiguration",
            Member::Struct(&S3_FILES_VOLUME_CONFIGURATION),
        ),
        (
            "fsxWindowsFileServerVolumeConfiguration",
            Member::Struct(&FSX_WINDOWS_FILE_SERVER_VOLUME_CONFIGURATION),
        ),
        ("configuredAtLaunch", Member::Leaf),
    ],
};
static HOST_VOLUME_PROPERTIES: Shape = Shape {
    name: "HostVolumeProperties",
    members: &[("sourcePath", Member::Leaf)],
};
static DOCKER_VOLUME_CONFIGURATION: Shape = Shape {
    name: "DockerVolumeConfiguration",
    members: &[
        ("scope", Member::Leaf),
        ("autoprovision", Member::Leaf),
        ("driver", Member::Leaf),
        ("driverOpts", Member::Map),
        ("labels", Member::Map),
    ],
};
static EFS_VOLUME_CONFIGURATION: Shape = Shape {
    name: "EfsVolumeConfiguration",
    members: &[
        ("fileSystemId", Member::Leaf),
        ("rootDirectory", Member::Leaf),
        ("transitEncryption", Member::Leaf),
        ("transitEncryptionPort", Member::Leaf),
        (
            "authorizationConfig",
            Member::Struct(&EFS_AUTHORIZATION_CONFIG),
        ),
    ],
};
static EFS_AUTHORIZATION_CONFIG: Shape = Shape {
    name: "EfsAuthorizationConfig",
    members: &[("accessPointId", Member::Leaf), ("iam", Member::Leaf)],
};
static S3_FILES_VOLUME_CONFIGURATION: Shape = Shape {
    name: "S3FilesVolumeConfiguration",
    members: &[
        ("fileSystemArn", Member::Leaf),
        ("rootDirectory", Member::Leaf),
        ("transitEncryptionPort", Member::Leaf),
        ("accessPointArn", Member::Leaf),
    ],
};
static FSX_WINDOWS_FILE_SERVER_VOLUME_CONFIGURATION: Shape = Shape {
    name: "FSxWindowsFileServerVolumeConfiguration",
    members: &[
        ("fileSystemId", Member::Leaf),
        ("rootDirectory", Member::Leaf),
        (
            "authorizationConfig",
            Member::Struct(&FSX_WINDOWS_FILE_SERVER_AUTHORIZATION_CONFIG),
        ),
    ],
};
static FSX_WINDOWS_FILE_SERVER_AUTHORIZATION_CONFIG: Shape = Shape {
    name: "FSxWindowsFileServerAuthorizationConfig",
    members: &[
        ("credentialsParameter", Member::Leaf),
        ("domain", Member::Leaf),
    ],
};
static TASK_DEFINITION_PLACEMENT_CONSTRAINT: Shape = Shape {
    name: "TaskDefinitionPlacementConstraint",
    members: &[("type", Member::Leaf), ("expression", Member::Leaf)],
};
static TAG: Shape = Shape {
    name: "Tag",
    members: &[("key", Member::Leaf), ("value", Member::Leaf)],
};
static PROXY_CONFIGURATION: Shape = Shape {
    name: "ProxyConfiguration",
    members: &[
        ("type", Member::Leaf),
        ("containerName", Member::Leaf),
        ("properties", Member::ListOf(&KEY_VALUE_PAIR)),
    ],
};
static INFERENCE_ACCELERATOR: Shape = Shape {
    name: "InferenceAccelerator",
    members: &[("deviceName", Member::Leaf), ("deviceType", Member::Leaf)],
};
static EPHEMERAL_STORAGE: Shape = Shape {
    name: "EphemeralStorage",
    members: &[("sizeInGiB", Member::Leaf)],
};
static RUNTIME_PLATFORM: Shape = Shape {
    name: "RuntimePlatform",
    members: &[
        ("cpuArchitecture", Member::Leaf),
        ("operatingSystemFamily", Member::Leaf),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Where the unknown fields are, in path order, and the names suggested.
    fn at(file: Value) -> Vec<(String, Option<&'static str>)> {
        let mut found: Vec<_> = unknown_fields(&file)
            .into_iter()
            .map(|u| (u.at, u.suggestion))
            .collect();
        found.sort();
        found
    }

    fn one(path: &str, suggestion: &'static str) -> Vec<(String, Option<&'static str>)> {
        vec![(path.to_string(), Some(suggestion))]
    }

    fn container(extra: Value) -> Value {
        let mut c = json!({"name": "web", "image": "web:1", "essential": true});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    }

    fn td(extra: Value, containers: Vec<Value>) -> Value {
        let mut t = json!({"family": "web", "containerDefinitions": containers});
        t.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        t
    }

    #[test]
    fn a_typo_at_the_top_is_named_with_the_field_meant() {
        assert_eq!(
            at(td(
                json!({"netwrokMode": "awsvpc"}),
                vec![container(json!({}))]
            )),
            one("$.netwrokMode", "networkMode")
        );
        assert_eq!(
            at(td(
                json!({"requiresCompatibility": ["FARGATE"]}),
                vec![container(json!({}))]
            )),
            one("$.requiresCompatibility", "requiresCompatibilities")
        );
    }

    #[test]
    fn a_typo_in_a_container_is_found() {
        let file = td(
            json!({}),
            vec![container(json!({
                "healthcheck": {"command": ["CMD", "true"], "interval": 5}
            }))],
        );
        assert_eq!(
            at(file),
            one("$.containerDefinitions[0].healthcheck", "healthCheck")
        );
        // Inside a known struct, its own members are checked.
        let file = td(
            json!({}),
            vec![container(json!({
                "healthCheck": {"command": ["CMD", "true"], "intervall": 5},
                "logConfiguration": {"logDriver": "awslogs", "option": {}}
            }))],
        );
        assert_eq!(
            at(file),
            vec![
                (
                    "$.containerDefinitions[0].healthCheck.intervall".to_string(),
                    Some("interval")
                ),
                (
                    "$.containerDefinitions[0].logConfiguration.option".to_string(),
                    Some("options")
                ),
            ]
        );
    }

    #[test]
    fn a_typo_deep_in_a_list_element_is_found() {
        let file = td(
            json!({"volumes": [
                {"name": "data", "efsVolumeConfiguration": {
                    "fileSystemId": "fs-1",
                    "authorizationConfig": {"accessPointID": "ap-1", "iam": "ENABLED"}
                }}
            ]}),
            vec![
                container(json!({"portMappings": [{"containerPort": 80}]})),
                container(json!({
                    "name": "sidecar",
                    "portMappings": [{"containerPrt": 9000, "protocol": "tcp"}],
                    "linuxParameters": {"capabilities": {"add": ["NET_ADMIN"], "dorp": []}}
                })),
            ],
        );
        assert_eq!(
            at(file),
            vec![
                (
                    "$.containerDefinitions[1].linuxParameters.capabilities.dorp".to_string(),
                    Some("drop")
                ),
                (
                    "$.containerDefinitions[1].portMappings[0].containerPrt".to_string(),
                    Some("containerPort")
                ),
                (
                    "$.volumes[0].efsVolumeConfiguration.authorizationConfig.accessPointID"
                        .to_string(),
                    Some("accessPointId")
                ),
            ]
        );
    }

    #[test]
    fn a_difference_in_case_only_suggests_that_name_first() {
        let file = td(
            json!({"CPU": "256"}),
            vec![container(json!({
                "environment": [{"Name": "MODE", "value": "prod"}],
                "portMappings": [{"containerPort": 80, "hostport": 80}]
            }))],
        );
        assert_eq!(
            at(file),
            vec![
                ("$.CPU".to_string(), Some("cpu")),
                (
                    "$.containerDefinitions[0].environment[0].Name".to_string(),
                    Some("name")
                ),
                (
                    "$.containerDefinitions[0].portMappings[0].hostport".to_string(),
                    Some("hostPort")
                ),
            ]
        );
    }

    #[test]
    fn the_keys_of_maps_are_free() {
        let file = td(
            json!({"volumes": [{"name": "v", "dockerVolumeConfiguration": {
                "driver": "local",
                "driverOpts": {"type": "nfs", "healthcheck": "x"},
                "labels": {"com.example/anything goes": "1"}
            }}]}),
            vec![container(json!({
                "dockerLabels": {"healthcheck": "not a field", "com.example.team": "core"},
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}},
                "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}},
                "environment": [{"name": "A", "value": "1"}],
                "resourceRequirements": [{"type": "GPU", "value": "1",
                    "sharingStrategy": {"nvidiaMps": {"memory": 1024, "maxComputePercent": 50}}}]
            }))],
        );
        assert_eq!(at(file), vec![]);
    }

    #[test]
    fn described_read_only_fields_and_nulls_pass() {
        let file = td(
            json!({
                "taskDefinitionArn": "arn:aws:ecs:us-east-1:1:task-definition/web:7",
                "revision": 7,
                "status": "ACTIVE",
                "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}],
                "compatibilities": ["EC2", "FARGATE"],
                "registeredAt": 1_700_000_000.5,
                "registeredBy": "arn:aws:iam::1:role/ci",
                "deregisteredAt": 1_700_000_001.5,
                "deleteRequestedAt": 1_700_000_002.5,
                "ephemeralStorage": null,
                "someNullField": null
            }),
            vec![container(
                json!({"linuxParameters": null, "healthcheck": null}),
            )],
        );
        assert_eq!(at(file), vec![]);
    }

    #[test]
    fn described_output_is_checked_under_its_wrapper() {
        let file = json!({
            "taskDefinition": td(
                json!({"revision": 3, "status": "ACTIVE"}),
                vec![container(json!({"healthcheck": {"command": ["CMD", "true"]}}))]
            ),
            "tags": [{"key": "team", "value": "core", "Value": "x"}],
            "tag": []
        });
        assert_eq!(
            at(file),
            vec![
                ("$.tag".to_string(), Some("tags")),
                ("$.tags[0].Value".to_string(), Some("value")),
                (
                    "$.taskDefinition.containerDefinitions[0].healthcheck".to_string(),
                    Some("healthCheck")
                ),
            ]
        );
    }

    #[test]
    fn values_are_not_type_checked_and_far_names_get_no_suggestion() {
        let file = td(
            json!({"someFutureField": {"nested": true}, "volumes": "not a list"}),
            vec![container(
                json!({"healthCheck": "not an object", "logConfig": {}}),
            )],
        );
        let found = unknown_fields(&file);
        let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            vec![
                "$.containerDefinitions[0].logConfig (did you mean `logConfiguration`?)",
                "$.someFutureField (not a field of RegisterTaskDefinitionInput)",
            ]
        );
        assert_eq!(
            at(json!({"family": "f", "my field": 1, "containerDefinitions": []})),
            vec![("$[\"my field\"]".to_string(), None)]
        );
        assert_eq!(at(json!([1, 2])), vec![], "not an object: taskdef says so");
    }

    #[test]
    fn edit_distance_counts_characters() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "", 3),
            ("kitten", "sitting", 3),
            ("healthcheck", "healthcheck", 0),
            ("containrport", "containerport", 1),
            ("naem", "name", 2),
            ("ünï", "uni", 2),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} → {b}");
            assert_eq!(edit_distance(b, a), d, "{b} → {a}");
        }
    }

    /// The table against the aws-sdk-ecs source this crate is built with.
    mod sdk_model {
        use super::super::*;
        use std::collections::{BTreeMap, BTreeSet};
        use std::path::{Path, PathBuf};
        use std::sync::OnceLock;

        /// The `src` directory of the aws-sdk-ecs package this crate depends on, found with
        /// `cargo metadata`. Not finding it fails the test: it never skips.
        fn sdk_source() -> PathBuf {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
            let run = |args: &[&str]| {
                let out = std::process::Command::new(&cargo)
                    .args(args)
                    .output()
                    .unwrap_or_else(|e| panic!("cannot run `{cargo} {}`: {e}", args.join(" ")));
                assert!(
                    out.status.success(),
                    "`cargo {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
                out.stdout
            };
            // The host's packages only: the others (Windows crates, say) need not be on disk.
            let version = String::from_utf8(run(&["-vV"])).unwrap();
            let host = version
                .lines()
                .find_map(|l| l.strip_prefix("host: "))
                .expect("`cargo -vV` names the host");
            let manifest = manifest.to_str().unwrap();
            let meta = run(&[
                "metadata",
                "--format-version",
                "1",
                "--offline",
                "--filter-platform",
                host,
                "--manifest-path",
                manifest,
            ]);
            let meta: Value = serde_json::from_slice(&meta).expect("cargo metadata's JSON");
            let packages = meta["packages"].as_array().expect("packages");
            let id_of = |name: &str| {
                packages
                    .iter()
                    .filter(|p| p["name"] == name)
                    .map(|p| p["id"].clone())
                    .collect::<Vec<_>>()
            };
            let [deckhand] = id_of(env!("CARGO_PKG_NAME"))
                .try_into()
                .unwrap_or_else(|ids| {
                    panic!(
                        "one {} package in cargo metadata, not {ids:?}",
                        env!("CARGO_PKG_NAME")
                    )
                });
            let node = meta["resolve"]["nodes"]
                .as_array()
                .expect("cargo metadata's resolve graph")
                .iter()
                .find(|n| n["id"] == deckhand)
                .expect("this crate in the resolve graph");
            let ecs = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == "aws_sdk_ecs")
                .expect("this crate depends on aws-sdk-ecs")["pkg"]
                .clone();
            let package = packages.iter().find(|p| p["id"] == ecs).unwrap();
            let src = Path::new(package["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .join("src");
            assert!(
                src.join("types").is_dir(),
                "no aws-sdk-ecs source at {}",
                src.display()
            );
            src
        }

        /// The SDK's source files, by the type each defines.
        fn sdk() -> &'static BTreeMap<String, String> {
            static SDK: OnceLock<BTreeMap<String, String>> = OnceLock::new();
            SDK.get_or_init(|| {
                let src = sdk_source();
                let defines = regex::Regex::new(r"(?m)^pub (?:struct|enum) (\w+) \{").unwrap();
                let mut files = BTreeMap::new();
                let mut dirs = vec![src.join("types"), src.join("operation")];
                while let Some(dir) = dirs.pop() {
                    for entry in std::fs::read_dir(&dir).unwrap() {
                        let path = entry.unwrap().path();
                        if path.is_dir() {
                            dirs.push(path);
                        } else if path.extension().is_some_and(|e| e == "rs") {
                            let text = std::fs::read_to_string(&path).unwrap();
                            let names: Vec<String> = defines
                                .captures_iter(&text)
                                .map(|c| c[1].to_string())
                                .collect();
                            for name in names {
                                files.entry(name).or_insert_with(|| text.clone());
                            }
                        }
                    }
                }
                assert!(
                    files.contains_key("RegisterTaskDefinitionInput")
                        && files.contains_key("ContainerDefinition"),
                    "the aws-sdk-ecs source at {} does not define the task-definition types",
                    src.display()
                );
                files
            })
        }

        /// How a member is described on both sides: `leaf`, `map`, `struct X`, `list X`.
        fn kind(member: &Member) -> String {
            match member {
                Member::Leaf => "leaf".into(),
                Member::Map => "map".into(),
                Member::Struct(s) => format!("struct {}", s.name),
                Member::ListOf(s) => format!("list {}", s.name),
            }
        }

        fn table(shape: &Shape) -> BTreeSet<(String, String)> {
            shape
                .members
                .iter()
                .map(|(n, m)| (n.to_string(), kind(m)))
                .collect()
        }

        /// A shape's members as the SDK's schema for it declares them (the names its
        /// serializer writes), each with its kind; for objects, the type the field holds.
        fn model(shape: &str) -> BTreeSet<(String, String)> {
            let text = sdk()
                .get(shape)
                .unwrap_or_else(|| panic!("aws-sdk-ecs defines no type {shape}"));
            let statics: BTreeMap<&str, &str> = regex::Regex::new(
                r"(?s)static (\w+): ::aws_smithy_schema::Schema<'static> =(.*?);\n",
            )
            .unwrap()
            .captures_iter(text)
            .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()))
            .collect();
            // `impl Shape { pub const SCHEMA: … = &ITS_SCHEMA; }` names the type's schema.
            let schema = regex::Regex::new(&format!(
                r"impl {shape} \{{[^}}]*?pub const SCHEMA: [^=]*= &(\w+);"
            ))
            .unwrap()
            .captures(text)
            .and_then(|c| statics.get(c.get(1).unwrap().as_str()))
            .filter(|body| body.contains("Schema::new_struct("))
            .unwrap_or_else(|| panic!("no schema for {shape}"));
            let list = regex::Regex::new(r"(?s)&\[(.*?)\]").unwrap();
            let members = &list.captures(schema).expect("the schema's members")[1];
            let shape_type = regex::Regex::new(r#"ShapeType::(\w+),\s*"([^"]+)""#).unwrap();
            let list_member = regex::Regex::new(r"with_list_member\(&(\w+)\)").unwrap();
            let serializer = text
                .split_once("fn serialize_members(")
                .map(|(_, s)| s.split_once("\n}\n").map_or(s, |(s, _)| s))
                .unwrap_or_else(|| panic!("no serializer for {shape}"));
            let target = |member: &str| -> String {
                // The field (or union variant) the serializer writes with this member's schema,
                // and the SDK type it is declared with.
                let write = serializer
                    .find(&format!("&{member},"))
                    .or_else(|| serializer.find(&format!("&{member})")))
                    .unwrap_or_else(|| panic!("{shape}: {member} is never written"));
                let field = regex::Regex::new(r"self\.((?:r#)?\w+)|Self::(\w+)\(")
                    .unwrap()
                    .captures_iter(&serializer[..write])
                    .last()
                    .map(|c| c.get(1).or(c.get(2)).unwrap().as_str().to_string())
                    .unwrap_or_else(|| panic!("{shape}: which field is {member}?"));
                let declared = regex::Regex::new(&format!(
                    r"(?m)^\s*(?:pub {f}: (.+),|{f}\((.+)\),)$",
                    f = regex::escape(&field)
                ))
                .unwrap();
                let ty = declared
                    .captures(text)
                    .map(|c| c.get(1).or(c.get(2)).unwrap().as_str().to_string())
                    .unwrap_or_else(|| panic!("{shape}: no declaration of {field}"));
                regex::Regex::new(r"crate::types::(\w+)")
                    .unwrap()
                    .captures_iter(&ty)
                    .last()
                    .map(|c| c[1].to_string())
                    .unwrap_or_else(|| panic!("{shape}.{field}: {ty} is no SDK type"))
            };
            regex::Regex::new(r"&(\w+)")
                .unwrap()
                .captures_iter(members)
                .map(|c| {
                    let member = c.get(1).unwrap().as_str();
                    let body = statics[member];
                    let t = shape_type.captures(body).expect("a member's type and name");
                    let kind = match &t[1] {
                        "Map" => "map".to_string(),
                        "Structure" | "Union" => format!("struct {}", target(member)),
                        "List" => {
                            let item = &list_member.captures(body).expect("a list's member")[1];
                            match &shape_type.captures(statics[item]).unwrap()[1] {
                                "Structure" | "Union" => format!("list {}", target(member)),
                                _ => "leaf".to_string(),
                            }
                        }
                        _ => "leaf".to_string(),
                    };
                    (t[2].to_string(), kind)
                })
                .collect()
        }

        fn differences(shape: &str, table: &BTreeSet<(String, String)>) -> Option<String> {
            let model = model(shape);
            (model != *table).then(|| {
                format!(
                    "{shape}: in the SDK only {:?}; in the table only {:?}",
                    model.difference(table).collect::<Vec<_>>(),
                    table.difference(&model).collect::<Vec<_>>()
                )
            })
        }

        #[test]
        fn every_shape_in_the_table_has_the_members_of_the_sdk_model() {
            let mut todo: Vec<&Shape> = vec![&REGISTER_TASK_DEFINITION_INPUT];
            let mut seen = BTreeSet::new();
            let mut wrong = Vec::new();
            while let Some(shape) = todo.pop() {
                if !seen.insert(shape.name) {
                    continue;
                }
                wrong.extend(differences(shape.name, &table(shape)));
                for (_, m) in shape.members {
                    if let Member::Struct(s) | Member::ListOf(s) = m {
                        todo.push(s);
                    }
                }
            }
            assert_eq!(wrong, Vec::<String>::new());
            assert!(seen.len() >= 30, "only {} shapes checked", seen.len());
        }

        #[test]
        fn described_output_is_the_register_input_plus_the_read_only_fields() {
            let wrapper = table(&DESCRIBE_TASK_DEFINITION_OUTPUT);
            let wrapper: BTreeSet<(String, String)> = wrapper
                .into_iter()
                .map(|(n, k)| match n.as_str() {
                    // The body is checked as register input: compared member for member below.
                    "taskDefinition" => (n, "struct TaskDefinition".to_string()),
                    _ => (n, k),
                })
                .collect();
            assert_eq!(differences("DescribeTaskDefinitionOutput", &wrapper), None);
            let register = table(&REGISTER_TASK_DEFINITION_INPUT);
            let expected: BTreeSet<(String, String)> = register
                .iter()
                .filter(|(n, _)| n != "tags")
                .cloned()
                .chain(
                    model("TaskDefinition")
                        .into_iter()
                        .filter(|(n, _)| READ_ONLY.contains(&n.as_str())),
                )
                .collect();
            assert_eq!(differences("TaskDefinition", &expected), None);
            let described: BTreeSet<String> = model("TaskDefinition")
                .into_iter()
                .map(|(n, _)| n)
                .collect();
            for field in READ_ONLY {
                assert!(
                    described.contains(field),
                    "{field} is not in TaskDefinition"
                );
                assert!(
                    !register.iter().any(|(n, _)| n == field),
                    "{field} is register input, not read-only"
                );
            }
        }
    }
}
