//! The JSON renderer: the result object as scripts read it, one line on stdout with
//! `--output json` and pretty-printed in the `--report` file; the two are the same object.

use serde_json::Value;

/// The result as one line, for stdout.
pub fn line(result: &Value) -> String {
    result.to_string()
}

/// The result as a file's contents, for `--report`.
pub fn file(result: &Value) -> String {
    serde_json::to_string_pretty(result).expect("plain data serializes") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_and_the_file_hold_the_same_object() {
        let v = serde_json::json!({"result": "deployed", "services": [{"service": "web"}]});
        assert!(!line(&v).contains('\n'));
        assert!(file(&v).ends_with("}\n"));
        let back: Value = serde_json::from_str(&file(&v)).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(&line(&v)).unwrap());
    }
}
