//! GitLab CI: collapsible log sections, and the dotenv report for `artifacts:reports:dotenv`.

use serde_json::Value;

/// The line that opens section `name` (letters, digits, `_`, `.` and `-`) titled `title`.
pub fn section_start(name: &str, title: &str, unix: u64) -> String {
    format!("\x1b[0Ksection_start:{unix}:{name}\r\x1b[0K{title}")
}

/// The line that closes section `name`.
pub fn section_end(name: &str, unix: u64) -> String {
    format!("\x1b[0Ksection_end:{unix}:{name}\r\x1b[0K")
}

/// `DECKHAND_<FIELD>=value` lines; values on one line, as dotenv reports require.
pub fn dotenv(result: &Value) -> String {
    super::fields(result)
        .into_iter()
        .map(|(k, v)| {
            format!(
                "DECKHAND_{}={}\n",
                k.to_ascii_uppercase(),
                v.replace(['\r', '\n'], " ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_and_dotenv_have_gitlabs_shapes() {
        assert_eq!(
            section_start("deckhand_1", "register web", 7),
            "\x1b[0Ksection_start:7:deckhand_1\r\x1b[0Kregister web"
        );
        assert_eq!(
            section_end("deckhand_1", 8),
            "\x1b[0Ksection_end:8:deckhand_1\r\x1b[0K"
        );
        let env = dotenv(
            &serde_json::json!({"result": "deployed", "reason": "a\nb", "rolled_back": false}),
        );
        assert!(env.contains("DECKHAND_RESULT=deployed\n"), "{env}");
        assert!(env.contains("DECKHAND_REASON=a b\n"), "{env}");
        assert!(env.contains("DECKHAND_ROLLED_BACK=false\n"), "{env}");
    }
}
