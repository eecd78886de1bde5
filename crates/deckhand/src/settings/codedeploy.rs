//! How a service with the CODE_DEPLOY controller is deployed: which CodeDeploy application
//! and deployment group, which Lambda hooks, or the user's own AppSpec.

use std::path::Path;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::config;
use crate::deploy::appspec::{self, HOOK_EVENTS};
use crate::error::{Error, Result};

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

/// The most characters CodeDeploy takes in an application or deployment group name.
pub const MAX_NAME: usize = 100;

/// The CodeDeploy settings the command line gave (flags and `DECKHAND_*`), each checked; the
/// AppSpec read. Empty values count as not given (the GitHub action passes unset inputs so).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FromFlags {
    pub application: Option<String>,
    pub deployment_group: Option<String>,
    /// Empty: none given.
    pub hooks: Vec<(String, String)>,
    pub appspec: Option<Value>,
}

impl FromFlags {
    /// The application and group flags of deploy, rollback and continue.
    pub fn group(args: &crate::cli::CodeDeployGroupArgs) -> Result<Self> {
        Ok(FromFlags {
            application: name(
                args.codedeploy_application.as_deref(),
                "--codedeploy-application",
            )?,
            deployment_group: name(
                args.codedeploy_deployment_group.as_deref(),
                "--codedeploy-deployment-group",
            )?,
            hooks: Vec::new(),
            appspec: None,
        })
    }

    /// Every CodeDeploy flag of deploy.
    pub fn deploy(args: &crate::cli::CodeDeployArgs) -> Result<Self> {
        let mut s = Self::group(&args.group)?;
        let specs: Vec<&str> = args
            .hooks
            .iter()
            .map(|h| h.trim())
            .filter(|h| !h.is_empty())
            .collect();
        s.hooks = hooks(
            specs.iter().map(|spec| {
                spec.split_once('=')
                    .map(|(e, f)| (e.trim(), f.trim()))
                    .ok_or_else(|| {
                        Error::usage(format!(
                            "--codedeploy-hook {spec:?}: expected EVENT=FUNCTION, e.g. \
                             AfterAllowTestTraffic=smoke-test"
                        ))
                    })
            }),
            "--codedeploy-hook",
        )?;
        s.appspec = match args.appspec.as_deref() {
            Some(p) if !p.as_os_str().is_empty() => Some(read_appspec(p, "--appspec")?),
            _ => None,
        };
        if s.appspec.is_some() && !s.hooks.is_empty() {
            return Err(both("--appspec", "--codedeploy-hook"));
        }
        Ok(s)
    }

    /// The application or deployment group given: these name one service's.
    pub fn names_one_service(&self) -> Option<&'static str> {
        if self.application.is_some() {
            Some("--codedeploy-application")
        } else if self.deployment_group.is_some() {
            Some("--codedeploy-deployment-group")
        } else {
            None
        }
    }
}

/// One `[codedeploy]` or `[services.codedeploy]` table, checked (`at` names it in errors, the
/// file at `origin` is where its `appspec` is relative to).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FromFile {
    pub application: Option<String>,
    pub deployment_group: Option<String>,
    /// In lifecycle order; empty: none.
    pub hooks: Vec<(String, String)>,
    pub appspec: Option<Value>,
    /// Where `hooks` and `appspec` were written, for the message refusing both.
    pub at: String,
}

impl FromFile {
    pub fn read(t: &config::CodeDeploy, at: &str, origin: &Path) -> Result<Self> {
        let mut hooks = hooks(
            t.hooks.iter().map(|(e, f)| Ok((e.as_str(), f.as_str()))),
            &format!("{at}: hooks:"),
        )?;
        hooks.sort_by_key(|(e, _)| appspec::event_order(e));
        let appspec = match t.appspec.as_deref() {
            Some(p) => Some(read_appspec(
                &super::beside(origin, p),
                &format!("{at}: appspec"),
            )?),
            None => None,
        };
        Ok(FromFile {
            application: name(t.application.as_deref(), &format!("{at}: application"))?,
            deployment_group: name(
                t.deployment_group.as_deref(),
                &format!("{at}: deployment-group"),
            )?,
            hooks,
            appspec,
            at: at.to_string(),
        })
    }
}

/// One service's settings: the flags over its own table over the file's shared one. A list of
/// hooks, or an AppSpec, replaces the one beneath it whole; an AppSpec with hooks from any
/// layer is refused, as the file names its own.
pub fn resolve(
    flags: &FromFlags,
    own: Option<&FromFile>,
    shared: &FromFile,
    flag_at: (&str, &str),
) -> Result<CodeDeploySettings> {
    let layers: Vec<&FromFile> = own.into_iter().chain(std::iter::once(shared)).collect();
    let pick = |flag: &Option<String>, get: fn(&FromFile) -> &Option<String>| {
        flag.clone()
            .or_else(|| layers.iter().find_map(|l| get(l).clone()))
    };
    let (hooks, hooks_at) = if !flags.hooks.is_empty() {
        (flags.hooks.clone(), flag_at.0.to_string())
    } else {
        layers
            .iter()
            .find(|l| !l.hooks.is_empty())
            .map(|l| (l.hooks.clone(), format!("`hooks` in {}", l.at)))
            .unwrap_or_default()
    };
    let (appspec, appspec_at) = if flags.appspec.is_some() {
        (flags.appspec.clone(), flag_at.1.to_string())
    } else {
        layers
            .iter()
            .find(|l| l.appspec.is_some())
            .map(|l| (l.appspec.clone(), format!("`appspec` in {}", l.at)))
            .unwrap_or_default()
    };
    if appspec.is_some() && !hooks.is_empty() {
        return Err(both(&appspec_at, &hooks_at));
    }
    Ok(CodeDeploySettings {
        application: pick(&flags.application, |l| &l.application),
        deployment_group: pick(&flags.deployment_group, |l| &l.deployment_group),
        hooks,
        appspec,
    })
}

fn both(appspec: &str, hooks: &str) -> Error {
    Error::usage(format!(
        "{appspec} goes without {hooks}: the AppSpec file names its own hooks. Put them in \
         its `Hooks`, or drop the AppSpec and let deckhand build one"
    ))
}

/// An application or deployment group name: 1 to 100 characters, as CodeDeploy takes them;
/// empty counts as not given.
fn name(given: Option<&str>, what: &str) -> Result<Option<String>> {
    match given.map(str::trim) {
        None | Some("") => Ok(None),
        Some(n) if n.chars().count() <= MAX_NAME && !n.chars().any(char::is_control) => {
            Ok(Some(n.to_string()))
        }
        Some(n) => Err(Error::usage(format!(
            "{what} {:?} is not a CodeDeploy name: use 1 to {MAX_NAME} characters, as the \
             application or deployment group is named in CodeDeploy",
            n.chars().take(40).collect::<String>()
        ))),
    }
}

/// Hooks `EVENT=FUNCTION`, each event one of [`HOOK_EVENTS`] (any case, kept canonical) and
/// named once, each function a Lambda name or ARN; in the order given.
fn hooks<'a>(
    given: impl Iterator<Item = Result<(&'a str, &'a str)>>,
    what: &str,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in given {
        let (event, function) = pair?;
        let canonical = appspec::event(event)
            .filter(|e| HOOK_EVENTS.contains(e))
            .ok_or_else(|| {
                Error::usage(format!(
                    "{what} {event:?} is not a lifecycle event a hook can run at; use one of {}",
                    HOOK_EVENTS.join(", ")
                ))
            })?;
        if out.iter().any(|(e, _)| e == canonical) {
            return Err(Error::usage(format!(
                "{what} {canonical} is named twice: give each event one function"
            )));
        }
        check_function(function)
            .map_err(|why| Error::usage(format!("{what} {canonical}={function:?}: {why}")))?;
        out.push((canonical.to_string(), function.to_string()));
    }
    Ok(out)
}

/// A Lambda function as a hook names it: its name (1 to 64 of letters, digits, `-`, `_`) or
/// its ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION_OR_ALIAS]`).
pub fn check_function(f: &str) -> std::result::Result<(), String> {
    static ARN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let arn = ARN.get_or_init(|| {
        regex::Regex::new(
            r"^arn:aws[-a-z]*:lambda:[a-z]{2}(-[a-z]+)+-\d+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:(\$LATEST|[A-Za-z0-9_-]{1,128}))?$",
        )
        .expect("a valid pattern")
    });
    let plain = (1..=64).contains(&f.len())
        && f.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if plain || arn.is_match(f) {
        Ok(())
    } else {
        Err(
            "not a Lambda function: give its name (letters, digits, - and _, at most 64) or its \
             ARN, arn:aws:lambda:REGION:ACCOUNT:function:NAME[:VERSION_OR_ALIAS]"
                .to_string(),
        )
    }
}

/// An AppSpec file read and parsed (JSON, else YAML) and checked: `what` names the flag or key
/// in errors.
pub fn read_appspec(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::usage(format!(
            "cannot read {what} {}: {e}; name a readable AppSpec file (JSON or YAML)",
            path.display()
        ))
    })?;
    let value = parse_appspec(&text)
        .and_then(|v| check_appspec(&v).map(|()| v))
        .map_err(|why| Error::usage(format!("{what} {}: {why}", path.display())))?;
    Ok(value)
}

/// JSON if it is JSON, else YAML converted to JSON.
pub fn parse_appspec(text: &str) -> std::result::Result<Value, String> {
    let json_error = match serde_json::from_str::<Value>(text) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    // A file that opens as JSON does is told JSON's complaint, which names where it broke.
    let unreadable = |yaml: String| {
        if text.trim_start().starts_with(['{', '[']) {
            format!("not valid JSON: {json_error}")
        } else {
            format!("neither JSON nor YAML: {yaml}")
        }
    };
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| unreadable(e.to_string()))?;
    // The loader copies an alias's value in: look for them in the events.
    struct Aliases(bool);
    impl yaml_rust2::parser::EventReceiver for Aliases {
        fn on_event(&mut self, ev: yaml_rust2::Event) {
            self.0 |= matches!(ev, yaml_rust2::Event::Alias(_));
        }
    }
    let mut aliases = Aliases(false);
    yaml_rust2::parser::Parser::new_from_str(text)
        .load(&mut aliases, true)
        .map_err(|e| unreadable(e.to_string()))?;
    if aliases.0 {
        return Err("a YAML alias (*name): write the value out instead".to_string());
    }
    match docs.len() {
        0 => Err("the file is empty: write an AppSpec (version, Resources)".to_string()),
        1 => yaml_to_json(&docs.remove(0)),
        n => Err(format!("{n} YAML documents: an AppSpec is one")),
    }
}

/// A YAML value as JSON: strings, integers, floats, booleans, null, lists, and maps whose keys
/// are strings; an alias, a non-string key or a float JSON cannot hold is an error.
pub fn yaml_to_json(y: &Yaml) -> std::result::Result<Value, String> {
    Ok(match y {
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(text) => {
            let f = y
                .as_f64()
                .ok_or_else(|| format!("{text:?} is not a number"))?;
            serde_json::Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| format!("{text} is not a number JSON can hold"))?
        }
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Null => Value::Null,
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .map(yaml_to_json)
                .collect::<std::result::Result<_, _>>()?,
        ),
        Yaml::Hash(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                let Yaml::String(key) = k else {
                    return Err(format!("a map key that is not a string ({k:?}): quote it"));
                };
                out.insert(key.clone(), yaml_to_json(v)?);
            }
            Value::Object(out)
        }
        Yaml::Alias(_) => {
            return Err("a YAML alias (*name): write the value out instead".to_string())
        }
        Yaml::BadValue => return Err("a value YAML could not read".to_string()),
    })
}

/// What deckhand needs of an AppSpec: a map with `version` and `Resources`, a list of exactly
/// one entry, whose `TargetService.Type` is `AWS::ECS::Service` (deckhand sets its
/// `TargetService.Properties.TaskDefinition`).
pub fn check_appspec(v: &Value) -> std::result::Result<(), String> {
    let map = v
        .as_object()
        .ok_or("not an AppSpec: expected a map with `version` and `Resources`")?;
    if !map.contains_key("version") {
        return Err("no `version`: add `version: 0.0`".to_string());
    }
    let resources = map
        .get("Resources")
        .ok_or("no `Resources`: add a list with the one ECS service target")?
        .as_array()
        .ok_or("`Resources` is not a list: make it a list of one TargetService")?;
    let [only] = resources.as_slice() else {
        return Err(format!(
            "`Resources` has {} entries: an ECS AppSpec has exactly one, the TargetService",
            resources.len()
        ));
    };
    let ty = only
        .get("TargetService")
        .and_then(|t| t.get("Type"))
        .and_then(Value::as_str);
    match ty {
        Some("AWS::ECS::Service") => Ok(()),
        Some(other) => Err(format!(
            "`Resources[0].TargetService.Type` is {other:?}: deckhand deploys an \
             AWS::ECS::Service"
        )),
        None => Err(
            "`Resources[0]` has no `TargetService.Type`: set it to AWS::ECS::Service".to_string(),
        ),
    }
}

/// What one service was given itself, by a flag or in its own `[services.codedeploy]`, named
/// as the user wrote it: the shared `[codedeploy]` table, written for the CODE_DEPLOY services
/// of a repository, is not counted.
pub fn given_to_one(flags: &FromFlags, own: Option<&FromFile>) -> Vec<String> {
    let mut given: Vec<String> = [
        (flags.application.is_some(), "--codedeploy-application"),
        (
            flags.deployment_group.is_some(),
            "--codedeploy-deployment-group",
        ),
        (!flags.hooks.is_empty(), "--codedeploy-hook"),
        (flags.appspec.is_some(), "--appspec"),
    ]
    .into_iter()
    .filter(|(set, _)| *set)
    .map(|(_, flag)| flag.to_string())
    .collect();
    if let Some(o) = own {
        given.extend(
            [
                (o.application.is_some(), "application"),
                (o.deployment_group.is_some(), "deployment-group"),
                (!o.hooks.is_empty(), "hooks"),
                (o.appspec.is_some(), "appspec"),
            ]
            .into_iter()
            .filter(|(set, _)| *set)
            .map(|(_, key)| format!("`{key}` in {}", o.at)),
        );
    }
    given
}

/// CodeDeploy settings given for a deploy in which no service has the CODE_DEPLOY controller
/// (pure): they would be ignored without a word, so a hook the user counts on would never run.
/// `services`: each service's name, controller and what it was given itself
/// ([`given_to_one`]). In a deploy with a CODE_DEPLOY service they are its, and nothing is
/// said.
pub fn unused(services: &[(&str, &str, &[String])]) -> Option<String> {
    if services.iter().any(|(_, c, _)| *c == "CODE_DEPLOY") {
        return None;
    }
    let (name, controller, given) = services.iter().find(|(_, _, g)| !g.is_empty())?;
    Some(format!(
        "{} set how a CODE_DEPLOY service is deployed, but service {name} uses the {controller} \
         deployment controller, which deckhand deploys without CodeDeploy: remove them, or \
         check that this is the service you meant",
        given.join(", ")
    ))
}

#[cfg(test)]
mod unused_tests {
    use super::*;

    #[test]
    fn codedeploy_settings_without_a_codedeploy_service_are_named() {
        let flags = FromFlags {
            hooks: vec![("BeforeAllowTraffic".into(), "check".into())],
            ..FromFlags::default()
        };
        let own = FromFile {
            deployment_group: Some("api-bg".into()),
            at: "deckhand.toml [services.codedeploy] of api".into(),
            ..FromFile::default()
        };
        assert_eq!(
            given_to_one(&flags, Some(&own)),
            [
                "--codedeploy-hook",
                "`deployment-group` in deckhand.toml [services.codedeploy] of api"
            ]
        );
        assert!(given_to_one(&FromFlags::default(), None).is_empty());

        let none: Vec<String> = Vec::new();
        let hook = vec!["--codedeploy-hook".to_string()];
        let table = vec!["`hooks` in deckhand.toml [services.codedeploy] of api".to_string()];
        type Services<'a> = Vec<(&'a str, &'a str, &'a [String])>;
        let cases: Vec<(Services, Option<&str>)> = vec![
            // The shared [codedeploy] table is not counted: nothing given to the service.
            (vec![("web", "ECS", &none)], None),
            (vec![("web", "CODE_DEPLOY", &hook)], None),
            // Mixed: the flags are the CODE_DEPLOY service's.
            (vec![("web", "ECS", &hook), ("api", "CODE_DEPLOY", &hook)], None),
            (
                vec![("web", "ECS", &none), ("api", "ECS", &hook)],
                Some("--codedeploy-hook set how a CODE_DEPLOY service is deployed, but service api uses the ECS deployment controller"),
            ),
            (
                vec![("api", "ECS", &table)],
                Some("`hooks` in deckhand.toml [services.codedeploy] of api set how"),
            ),
        ];
        for (services, want) in cases {
            let got = unused(&services);
            match want {
                None => assert_eq!(got, None, "{services:?}"),
                Some(w) => assert!(got.as_deref().is_some_and(|g| g.starts_with(w)), "{got:?}"),
            }
        }
    }
}
