//! The BuildKit-era build options (`--builder`, `--secret`, `--platform`) as parsed values,
//! so the settings check them once and the build takes them as they are.

use std::fmt;
use std::path::PathBuf;

/// Which of the engine's builders runs the build (`--builder`, `builder` in deckhand.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuilderChoice {
    // (No doc comments on the variants: clap would list them in `--help`.)
    // BuildKit when the engine has it, else the classic builder.
    #[default]
    Auto,
    #[value(name = "buildkit")]
    BuildKit,
    Legacy,
}

/// The network a build's RUN steps get (`--build-network`, `build-network` in deckhand.toml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildNetwork {
    Default,
    Host,
    None,
}

impl BuildNetwork {
    /// The engine's name for it (`/build?networkmode=`).
    pub fn mode(self) -> &'static str {
        match self {
            BuildNetwork::Default => "default",
            BuildNetwork::Host => "host",
            BuildNetwork::None => "none",
        }
    }
}

/// Where a build secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file, read when the build asks for the secret.
    File(PathBuf),
    /// An environment variable of deckhand's process.
    Env(String),
}

/// A build secret: `RUN --mount=type=secret,id=ID` in the Dockerfile gets its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildSecret {
    pub id: String,
    pub source: SecretSource,
}

impl BuildSecret {
    /// Parses `--secret` as `docker build` does: comma-separated `key=value` fields, keys in
    /// any case — `id=NAME` (required), `src=FILE` or `source=FILE`, `env=VAR`, and
    /// `type=file|env`. `type=env,src=VAR` names a variable (as buildx reads it).
    ///
    /// With neither `src` nor `env`, the secret is the environment variable named by the id
    /// (`id=NPM_TOKEN` reads `$NPM_TOKEN`), or with `type=file` the file named by the id.
    /// buildx would fall back to a file named NAME when the variable is unset; deckhand does
    /// not, so which one is read never depends on what happens to be in the working directory.
    /// Values cannot contain commas (no CSV quoting).
    pub fn parse(s: &str) -> Result<BuildSecret, String> {
        let shape = "use id=NAME,src=FILE or id=NAME,env=VAR";
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut kind = None;
        for field in s.split(',') {
            let field = field.trim();
            let Some((key, value)) = field.split_once('=') else {
                return Err(format!(
                    "--secret {s:?}: {field:?} is not a key=value field; {shape}"
                ));
            };
            let key = key.trim().to_ascii_lowercase();
            let slot = match key.as_str() {
                "id" => &mut id,
                "src" | "source" => &mut src,
                "env" => &mut env,
                "type" => &mut kind,
                _ => {
                    return Err(format!(
                        "--secret {s:?}: unknown key {key:?}; the keys are id, src (or source), \
                         env and type"
                    ))
                }
            };
            if slot.is_some() {
                let key = if key == "source" { "src" } else { &key };
                return Err(format!("--secret {s:?}: {key} is given twice"));
            }
            *slot = Some(value.trim().to_string());
        }
        let id = match id {
            None => return Err(format!("--secret {s:?} has no id; {shape}")),
            Some(id) if id.is_empty() => return Err(format!("--secret {s:?}: the id is empty")),
            Some(id) => id,
        };
        let source = match (kind.as_deref(), src, env) {
            (_, Some(_), Some(_)) => {
                return Err(format!(
                    "--secret {s:?}: give src=FILE or env=VAR, not both"
                ))
            }
            (Some("file"), _, Some(_)) => {
                return Err(format!(
                    "--secret {s:?}: type=file reads src=FILE; for a variable use type=env"
                ))
            }
            (Some("file") | None, Some(path), None) => SecretSource::File(path.into()),
            (Some("env"), Some(var), None) | (Some("env") | None, None, Some(var)) => {
                SecretSource::Env(var)
            }
            (Some("file"), None, None) => SecretSource::File(id.clone().into()),
            (Some("env") | None, None, None) => SecretSource::Env(id.clone()),
            (Some(other), _, _) => {
                return Err(format!(
                    "--secret {s:?}: type={other} is not a secret type; use type=file or \
                     type=env"
                ))
            }
        };
        match &source {
            SecretSource::File(p) if p.as_os_str().is_empty() => {
                Err(format!("--secret {s:?}: the file is empty; give src=FILE"))
            }
            SecretSource::Env(v) if v.is_empty() => Err(format!(
                "--secret {s:?}: the variable is empty; give env=VAR"
            )),
            _ => Ok(BuildSecret { id, source }),
        }
    }

    /// The secret's bytes now: the file's content or the variable's value. A variable that is
    /// set but empty counts as missing (a CI secret that was never defined arrives as "").
    pub fn read(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<u8>, String> {
        match &self.source {
            SecretSource::File(path) => {
                std::fs::read(path).map_err(|e| self.unreadable(path, &e.to_string()))
            }
            SecretSource::Env(var) => match env(var) {
                Some(v) if !v.is_empty() => Ok(v.into_bytes()),
                _ => Err(format!(
                    "build secret {:?}: the environment variable {var} is not set (or is \
                     empty); set it for deckhand (in GitHub Actions: `env: {var}: ${{{{ \
                     secrets.{var} }}}}` on the step), or name another with env=VAR",
                    self.id
                )),
            },
        }
    }

    /// Why the secret's file cannot be read, and what to do.
    fn unreadable(&self, path: &std::path::Path, why: &str) -> String {
        format!(
            "build secret {:?}: cannot read {}: {why}; point src= at a readable file",
            self.id,
            path.display()
        )
    }

    /// Whether [`BuildSecret::read`] would find the secret, without reading it: the file opens
    /// and is a file, or the variable is set and not empty.
    pub fn check(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), String> {
        match &self.source {
            SecretSource::File(path) => {
                let cannot = |why: &str| self.unreadable(path, why);
                let file = std::fs::File::open(path).map_err(|e| cannot(&e.to_string()))?;
                match file.metadata() {
                    Ok(m) if m.is_dir() => Err(cannot("it is a directory")),
                    Ok(_) => Ok(()),
                    Err(e) => Err(cannot(&e.to_string())),
                }
            }
            SecretSource::Env(_) => self.read(env).map(|_| ()),
        }
    }
}

/// A target platform, `os/architecture[/variant]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

/// The platforms `--platform` takes, as written in messages.
pub const PLATFORMS: &str =
    "linux/amd64, linux/arm64 (what ECS and Fargate run), linux/arm/v7, linux/386, \
     linux/ppc64le, linux/s390x, linux/riscv64";

impl Platform {
    /// Parses `linux/amd64`, `linux/arm64` (`linux/arm64/v8` is the same), `linux/arm/v7`
    /// (`linux/arm` means v7), `linux/386`, `linux/ppc64le`, `linux/s390x`, `linux/riscv64`; in
    /// any case, with `x86_64` and `aarch64` read as `amd64` and `arm64`. Anything else is an
    /// error listing these.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let lower = s.trim().to_ascii_lowercase();
        let parts: Vec<&str> = lower.split('/').collect();
        let refuse = |why: &str| format!("--platform {s:?} {why}; use one of {PLATFORMS}");
        let (os, arch, variant) = match parts.as_slice() {
            [os, arch] => (*os, *arch, None),
            [os, arch, variant] => (*os, *arch, Some(*variant)),
            [_] => return Err(refuse("names no operating system (e.g. linux/arm64)")),
            _ => return Err(refuse("is not os/architecture[/variant]")),
        };
        if os != "linux" {
            return Err(refuse(
                "is not a Linux platform: deckhand builds Linux images",
            ));
        }
        let arch = match arch {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            a => a,
        };
        let variant = match (arch, variant) {
            ("amd64" | "386" | "ppc64le" | "s390x" | "riscv64", None) => None,
            ("arm64", None | Some("v8")) => None,
            ("arm", None | Some("v7")) => Some("v7"),
            ("amd64" | "386" | "ppc64le" | "s390x" | "riscv64" | "arm64" | "arm", Some(_)) => {
                return Err(refuse("has a variant deckhand does not build for"))
            }
            _ => return Err(refuse("is not an architecture deckhand builds for")),
        };
        Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: variant.map(str::to_string),
        })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(id: &str, path: &str) -> Result<BuildSecret, String> {
        Ok(BuildSecret {
            id: id.into(),
            source: SecretSource::File(path.into()),
        })
    }

    fn env(id: &str, var: &str) -> Result<BuildSecret, String> {
        Ok(BuildSecret {
            id: id.into(),
            source: SecretSource::Env(var.into()),
        })
    }

    #[test]
    fn secrets_parse_as_docker_build_reads_them() {
        for (text, want) in [
            ("id=npm,src=.npmrc", file("npm", ".npmrc")),
            ("id=npm,source=/run/npmrc", file("npm", "/run/npmrc")),
            ("src=.npmrc,id=npm", file("npm", ".npmrc")),
            ("ID=npm,SRC=.npmrc", file("npm", ".npmrc")),
            (" id = npm , src = a b ", file("npm", "a b")),
            ("id=npm,env=NPM_TOKEN", env("npm", "NPM_TOKEN")),
            ("id=NPM_TOKEN", env("NPM_TOKEN", "NPM_TOKEN")),
            ("type=file,id=npm,src=.npmrc", file("npm", ".npmrc")),
            ("type=file,id=npmrc", file("npmrc", "npmrc")),
            ("type=env,id=npm,env=TOKEN", env("npm", "TOKEN")),
            ("type=env,id=npm,src=TOKEN", env("npm", "TOKEN")),
            ("type=env,id=TOKEN", env("TOKEN", "TOKEN")),
            ("id=k,src=a=b", file("k", "a=b")),
        ] {
            assert_eq!(BuildSecret::parse(text), want, "{text}");
        }
    }

    #[test]
    fn bad_secrets_say_what_is_wrong() {
        for (text, says) in [
            ("src=.npmrc", "has no id"),
            ("", "not a key=value field"),
            ("id=,src=a", "the id is empty"),
            ("id=a,id=b", "id is given twice"),
            ("id=a,src=x,source=y", "src is given twice"),
            ("id=a,src=x,env=Y", "not both"),
            ("id=a,type=file,env=Y", "type=file reads src=FILE"),
            ("id=a,type=ssh", "type=ssh is not a secret type"),
            ("id=a,required=true", "unknown key \"required\""),
            ("npm", "not a key=value field"),
            ("id=a,src=", "the file is empty"),
            ("id=a,env=", "the variable is empty"),
        ] {
            let err = BuildSecret::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_secret_is_read_from_its_file_or_variable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cr3t\n").unwrap();
        let vars = |name: &str| match name {
            "SET" => Some("v".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        let from_file = BuildSecret {
            id: "t".into(),
            source: SecretSource::File(path.clone()),
        };
        assert_eq!(from_file.read(&vars).unwrap(), b"s3cr3t\n");
        assert_eq!(from_file.check(&vars), Ok(()));
        let set = BuildSecret::parse("id=t,env=SET").unwrap();
        assert_eq!(set.read(&vars).unwrap(), b"v");
        for (secret, says) in [
            (
                BuildSecret::parse("id=t,env=UNSET").unwrap(),
                "build secret \"t\": the environment variable UNSET is not set",
            ),
            (BuildSecret::parse("id=t,env=EMPTY").unwrap(), "EMPTY"),
            (
                BuildSecret {
                    id: "t".into(),
                    source: SecretSource::File(dir.path().join("missing")),
                },
                "build secret \"t\": cannot read",
            ),
            (
                BuildSecret {
                    id: "t".into(),
                    source: SecretSource::File(dir.path().to_path_buf()),
                },
                "cannot read",
            ),
        ] {
            let err = secret.check(&vars).unwrap_err();
            assert!(err.contains(says), "{secret:?}: {err}");
            assert!(secret.read(&vars).is_err(), "{secret:?}");
        }
    }

    #[test]
    fn platforms_parse_to_what_the_engine_takes() {
        for (text, shown) in [
            ("linux/amd64", "linux/amd64"),
            ("linux/arm64", "linux/arm64"),
            ("linux/arm64/v8", "linux/arm64"),
            ("Linux/ARM64", "linux/arm64"),
            ("linux/x86_64", "linux/amd64"),
            ("linux/aarch64", "linux/arm64"),
            ("linux/arm/v7", "linux/arm/v7"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/386", "linux/386"),
            ("linux/ppc64le", "linux/ppc64le"),
            ("linux/s390x", "linux/s390x"),
            ("linux/riscv64", "linux/riscv64"),
            (" linux/amd64 ", "linux/amd64"),
        ] {
            let p = Platform::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(p.to_string(), shown, "{text}");
        }
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap(),
            Platform {
                os: "linux".into(),
                architecture: "arm".into(),
                variant: Some("v7".into())
            }
        );
        for (text, says) in [
            ("arm64", "names no operating system"),
            ("", "names no operating system"),
            ("windows/amd64", "is not a Linux platform"),
            ("darwin/arm64", "is not a Linux platform"),
            ("linux/mips64", "is not an architecture"),
            ("linux/arm/v6", "has a variant"),
            ("linux/amd64/v3", "has a variant"),
            ("linux/arm64/v8/x", "is not os/architecture[/variant]"),
            ("linux/", "is not an architecture"),
        ] {
            let err = Platform::parse(text).unwrap_err();
            assert!(err.contains(says), "{text}: {err}");
            assert!(err.contains("linux/amd64, linux/arm64"), "{text}: {err}");
        }
    }

    #[test]
    fn builder_names_are_lowercase_words() {
        use clap::ValueEnum;
        let names: Vec<String> = BuilderChoice::value_variants()
            .iter()
            .map(|v| v.to_possible_value().unwrap().get_name().to_string())
            .collect();
        assert_eq!(names, ["auto", "buildkit", "legacy"]);
        #[derive(serde::Deserialize)]
        struct T {
            b: BuilderChoice,
        }
        let t: T = toml::from_str("b = \"buildkit\"").unwrap();
        assert_eq!(t.b, BuilderChoice::BuildKit);
        assert_eq!(BuilderChoice::default(), BuilderChoice::Auto);
    }
}
