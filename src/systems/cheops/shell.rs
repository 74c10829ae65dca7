//! The `shell` backend: each command run by `sh`, as the original does.
//! This is the slow-work effect's body (`Work::run`, on a worker thread of
//! the agent), never handler code; the site only hands it over as data.
//!
//! As in the original, a command's attached files are written to a fresh
//! temporary directory and each `{name}` in the command becomes their path.
//! Unlike the original, the working directory is the site's own directory
//! for the resource, kept between commands, so `echo init > f` then
//! `echo left >> f` act on one file per site (the original's cwd is the
//! temporary directory, which is deleted after each command).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::kv_backend::CommandResult;

/// A command that runs longer is killed and reported KO.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// Where one site runs one resource's commands.
pub fn resource_dir(site_dir: &Path, resource: &str) -> PathBuf {
    site_dir.join(hex::encode(resource))
}

fn ko(output: impl Into<String>) -> CommandResult {
    CommandResult {
        ok: false,
        output: output.into(),
    }
}

/// A fresh `cheops.tmp.*` directory holding `files`.
fn temp_with(files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cheops.tmp.{}.{n}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for (name, bytes) in files {
        // A file part names a file, never a path out of the directory.
        let base = Path::new(name)
            .file_name()
            .ok_or_else(|| std::io::Error::other(format!("bad file name {name:?}")))?;
        std::fs::write(dir.join(base), bytes)?;
    }
    Ok(dir)
}

/// Runs `command` by `sh` in `cwd` (created if missing), with `files`
/// attached; stdout and stderr together are the output, a non-zero exit
/// status is KO.
pub fn run(
    cwd: &Path,
    command: &str,
    files: &BTreeMap<String, Vec<u8>>,
    env: &[(&str, &str)],
) -> CommandResult {
    if let Err(e) = std::fs::create_dir_all(cwd) {
        return ko(format!("cannot create {}: {e}", cwd.display()));
    }
    let tmp = match temp_with(files) {
        Ok(d) => d,
        Err(e) => return ko(format!("cannot write the attached files: {e}")),
    };
    let mut text = command.to_string();
    for name in files.keys() {
        if let Some(base) = Path::new(name).file_name() {
            let path = tmp.join(base);
            text = text.replace(&format!("{{{name}}}"), &path.to_string_lossy());
        }
    }
    let result = run_in(cwd, &tmp, &text, env);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn run_in(cwd: &Path, tmp: &Path, command: &str, env: &[(&str, &str)]) -> CommandResult {
    // Output goes to a file, so a chatty command cannot fill a pipe while
    // the timeout is being watched.
    let out_path = tmp.join(".cheops-output");
    let out = match std::fs::File::create(&out_path) {
        Ok(f) => f,
        Err(e) => return ko(format!("cannot create the output file: {e}")),
    };
    let err = match out.try_clone() {
        Ok(f) => f,
        Err(e) => return ko(format!("cannot share the output file: {e}")),
    };
    let mut cmd = Command::new("sh");
    cmd.current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .env("CHEOPS_TMP", tmp);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return ko(format!("cannot start sh: {e}")),
    };
    // The command on stdin, as the original.
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(command.as_bytes());
    }
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Ok(s),
            Ok(None) if started.elapsed() > COMMAND_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {} s", COMMAND_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => break Err(format!("cannot wait for sh: {e}")),
        }
    };
    let mut output = String::new();
    if let Ok(mut f) = std::fs::File::open(&out_path) {
        let mut bytes = Vec::new();
        let _ = f.read_to_end(&mut bytes);
        output = String::from_utf8_lossy(&bytes).into_owned();
    }
    match status {
        Ok(s) if s.success() => CommandResult { ok: true, output },
        Ok(s) => ko(format!("{output}{}failed: {s}", sep(&output))),
        Err(why) => ko(format!("{output}{}{why}", sep(&output))),
    }
}

fn sep(output: &str) -> &'static str {
    if output.is_empty() || output.ends_with('\n') {
        ""
    } else {
        "\n"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_status_files_and_working_directory() {
        let dir = tempfile::tempdir().unwrap();
        let none = BTreeMap::new();
        // The original's backends/shell_test.go vectors.
        let r = run(dir.path(), "echo -n foo", &none, &[]);
        assert_eq!((r.ok, r.output.as_str()), (true, "foo"));
        let r = run(dir.path(), "echo init > f; echo left >> f", &none, &[]);
        assert!(r.ok);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("f")).unwrap(),
            "init\nleft\n"
        );
        let r = run(dir.path(), "echo oops >&2; exit 3", &none, &[]);
        assert!(!r.ok);
        assert!(r.output.starts_with("oops\n"), "{:?}", r.output);
        assert!(r.output.contains("failed"), "{:?}", r.output);
        let files = BTreeMap::from([("recipe.yml".to_string(), b"a: 1\n".to_vec())]);
        let r = run(dir.path(), "cat {recipe.yml}", &files, &[]);
        assert_eq!((r.ok, r.output.as_str()), (true, "a: 1\n"));
        let r = run(dir.path(), "echo $WHO", &none, &[("WHO", "s1")]);
        assert_eq!(r.output, "s1\n");
    }
}
