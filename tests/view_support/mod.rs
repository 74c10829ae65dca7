//! Shared by the `dz view` tests: a simulated kv run on disk, a `dz view`
//! server on a free port (killed on drop), and plain HTTP/1.1 requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub fn dz() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dz"));
    c.env("DZ_LOG", "info");
    c
}

/// `dz simulate` of the kv example into `dir/run`.
pub fn kv_run(dir: &Path) -> PathBuf {
    simulate(dir, "kv-five.json", "run", &[])
}

/// `dz simulate` of `examples/topologies/NAME` into `dir/out`.
pub fn simulate(dir: &Path, name: &str, out: &str, args: &[&str]) -> PathBuf {
    let out = dir.join(out);
    let topo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/topologies")
        .join(name);
    let st = dz()
        .env("DZ_TMP_DIR", dir.join("tmp"))
        .args([
            "simulate",
            topo.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "dz simulate {name} failed");
    out
}

pub struct Server {
    child: Child,
    pub url: String,
    pub first_line: String,
}

impl Server {
    /// Starts `dz view PATH` and waits for the URL it prints.
    pub fn start(path: &Path, tmp: &Path) -> Server {
        let mut child = dz()
            .env("DZ_TMP_DIR", tmp)
            .args(["view", path.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .trim_end_matches('/')
            .to_string();
        Server {
            child,
            url,
            first_line: line,
        }
    }

    pub fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_string()
    }

    /// (status, body) of a request.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut s = TcpStream::connect(self.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
        let body = body.unwrap_or("");
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status: u16 = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
        let body = resp
            .split_once("\r\n\r\n")
            .map(|x| x.1)
            .unwrap_or("")
            .to_string();
        (status, dechunk(&body))
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (code, body) = self.request("GET", path, None);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
    }

    /// Waits until the background re-run has sampled node states.
    pub fn wait_states(&self, run: usize) {
        for _ in 0..600 {
            if self.get_json(&format!("/api/meta?run={run}"))["states_ready"] == true {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("states never became ready");
    }
}

/// Undoes chunked transfer encoding, if the body uses it.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let Some((len, after)) = rest.split_once("\r\n") else {
            return body.to_string();
        };
        let Ok(n) = usize::from_str_radix(len.trim(), 16) else {
            return body.to_string();
        };
        if n == 0 {
            return out;
        }
        if after.len() < n {
            return body.to_string();
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as Ctrl-C would (SIGTERM) and waits for it.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let st = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
