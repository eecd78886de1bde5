//! How a service with the CODE_DEPLOY controller is deployed: which CodeDeploy application
//! and deployment group, which Lambda hooks, or the user's own AppSpec.

/// One service's CodeDeploy settings, resolved (flags over `[services.codedeploy]` over
/// `[codedeploy]`); ignored for services with the ECS controller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeDeploySettings {
    /// `--codedeploy-application`; `None`: found from the service.
    pub application: Option<String>,
    /// `--codedeploy-deployment-group`; `None`: found from the service.
    pub deployment_group: Option<String>,
    /// `--codedeploy-hook EVENT=FUNCTION`, in the order given, each event once, EVENT one of
    /// [`crate::deploy::appspec::HOOK_EVENTS`] in its canonical spelling.
    pub hooks: Vec<(String, String)>,
    /// `--appspec FILE`, read and parsed (JSON or YAML) into JSON; deckhand only sets the
    /// TaskDefinition of its target service.
    pub appspec: Option<serde_json::Value>,
}
