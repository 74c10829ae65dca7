//! The `dz` binary as tests run it: scratch files under `tmp`, and no
//! Logstash address inherited from the environment.

use std::path::Path;

use assert_cmd::Command;

pub fn dz(tmp: &Path) -> Command {
    let mut c = Command::cargo_bin("dz").unwrap();
    c.env("DZ_TMP_DIR", tmp)
        .env_remove("LOGSTASH_HOST")
        .env_remove("LOGSTASH_PORT");
    c
}
