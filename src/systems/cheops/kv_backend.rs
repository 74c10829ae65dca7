//! The deterministic `kv` backend: a Redis-like keyspace per resource
//! (`SET`, `INCRBY`, `APPEND`, `DEL`, `GET`), usable in every mode.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One resource's keys.
pub type Keyspace = BTreeMap<String, String>;

/// What one command gave: success and its output (Redis' reply, or the
/// error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandResult {
    pub ok: bool,
    pub output: String,
}

fn err(s: impl Into<String>) -> CommandResult {
    CommandResult {
        ok: false,
        output: s.into(),
    }
}

fn ok(s: impl Into<String>) -> CommandResult {
    CommandResult {
        ok: true,
        output: s.into(),
    }
}

/// Runs one command on `keys`; a failed command changes nothing.
pub fn execute(keys: &mut Keyspace, command: &str) -> CommandResult {
    let words: Vec<&str> = command.split_whitespace().collect();
    let Some(name) = words.first() else {
        return err("ERR empty command");
    };
    let args = &words[1..];
    let arity = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(err(format!(
                "ERR wrong number of arguments for '{}' command",
                name.to_lowercase()
            )))
        }
    };
    match name.to_ascii_uppercase().as_str() {
        "SET" => {
            // The value is the rest of the line, so values may hold spaces.
            if args.len() < 2 {
                return err("ERR wrong number of arguments for 'set' command");
            }
            let value = command
                .trim_start()
                .split_once(char::is_whitespace)
                .map(|(_, r)| r.trim_start())
                .and_then(|r| r.split_once(char::is_whitespace))
                .map(|(_, v)| v.trim())
                .unwrap_or_default();
            keys.insert(args[0].to_string(), value.to_string());
            ok("OK")
        }
        "INCRBY" => {
            if let Err(e) = arity(2) {
                return e;
            }
            let Ok(by) = args[1].parse::<i64>() else {
                return err("ERR value is not an integer or out of range");
            };
            let now = match keys.get(args[0]).map(|v| v.parse::<i64>()) {
                None => 0,
                Some(Ok(v)) => v,
                Some(Err(_)) => return err("ERR value is not an integer or out of range"),
            };
            let Some(new) = now.checked_add(by) else {
                return err("ERR increment or decrement would overflow");
            };
            keys.insert(args[0].to_string(), new.to_string());
            ok(new.to_string())
        }
        "APPEND" => {
            if let Err(e) = arity(2) {
                return e;
            }
            let v = keys.entry(args[0].to_string()).or_default();
            v.push_str(args[1]);
            ok(v.len().to_string())
        }
        "DEL" => {
            if args.is_empty() {
                return err("ERR wrong number of arguments for 'del' command");
            }
            let n = args.iter().filter(|k| keys.remove(**k).is_some()).count();
            ok(n.to_string())
        }
        "GET" => {
            if let Err(e) = arity(1) {
                return e;
            }
            ok(keys.get(args[0]).cloned().unwrap_or_else(|| "(nil)".into()))
        }
        _ => err(format!("ERR unknown command '{name}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_behave_like_redis() {
        let mut k = Keyspace::new();
        assert_eq!(execute(&mut k, "SET x 23"), ok("OK"));
        assert_eq!(execute(&mut k, "incrby x 13"), ok("36"));
        assert_eq!(execute(&mut k, "INCRBY x -12"), ok("24"));
        assert_eq!(execute(&mut k, "GET x"), ok("24"));
        assert_eq!(execute(&mut k, "APPEND y ab"), ok("2"));
        assert_eq!(execute(&mut k, "APPEND y cd"), ok("4"));
        assert!(!execute(&mut k, "INCRBY y 1").ok);
        assert_eq!(execute(&mut k, "GET y"), ok("abcd"));
        assert_eq!(execute(&mut k, "DEL y x z"), ok("2"));
        assert_eq!(execute(&mut k, "GET x"), ok("(nil)"));
        assert_eq!(execute(&mut k, "SET s hello world"), ok("OK"));
        assert_eq!(execute(&mut k, "GET s"), ok("hello world"));
        assert!(!execute(&mut k, "SADD x error").ok);
        assert!(!execute(&mut k, "").ok);
        assert!(!execute(&mut k, "INCRBY x").ok);
        assert!(
            !execute(&mut k, "INCRBY x 9223372036854775807").ok || k["x"] == "9223372036854775807"
        );
    }
}
