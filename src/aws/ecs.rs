//! ECS calls deckhand makes itself. RegisterTaskDefinition sends the task definition exactly
//! as rendered, so fields this SDK version does not model (newer ECS features) survive.

use aws_config::SdkConfig;
use aws_sdk_ecs::types::ContainerDefinition;
use aws_sdk_ecs::Client;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

use crate::error::{Error, Result};

/// Replaces the serialized request body before it is signed.
#[derive(Debug)]
struct SendBody(Vec<u8>);

impl Intercept for SendBody {
    fn name(&self) -> &'static str {
        "deckhand::SendBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        *request.body_mut() = SdkBody::from(self.0.clone());
        request
            .headers_mut()
            .insert("content-length", self.0.len().to_string());
        Ok(())
    }
}

/// A registered revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub arn: String,
    pub revision: i32,
}

/// RegisterTaskDefinition with `body` (the full request JSON, tags included) as the payload.
pub async fn register_task_definition(config: &SdkConfig, body: &Value) -> Result<Registered> {
    let client = Client::new(config);
    let family = body["family"].as_str().unwrap_or_default();
    let bytes = serde_json::to_vec(body)
        .map_err(|e| Error::failed(format!("cannot encode the task definition: {e}")))?;
    let out = client
        .register_task_definition()
        // What the SDK requires to build the call; the interceptor sends `body` instead.
        .family(family)
        .container_definitions(ContainerDefinition::builder().build())
        .customize()
        .interceptor(SendBody(bytes))
        .send()
        .await
        .map_err(|e| {
            Error::failed(format!(
                "ECS RegisterTaskDefinition for family {family:?} failed: {}. Nothing was changed.",
                super::describe(&e)
            ))
        })?;
    let td = out
        .task_definition()
        .ok_or_else(|| Error::failed("ECS RegisterTaskDefinition returned no task definition"))?;
    Ok(Registered {
        arn: td.task_definition_arn().unwrap_or_default().to_string(),
        revision: td.revision(),
    })
}
