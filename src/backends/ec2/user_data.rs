//! The user-data an instance boots with: `machine-image/cloud/user-data.sh`
//! with the cluster's values and the systemd unit filled in.

use base64::Engine;

const SCRIPT: &str = include_str!("../../../machine-image/cloud/user-data.sh");
const UNIT: &str = include_str!("../../../machine-image/cloud/dz-machine.service");

/// Single-quoted shell literal content: refuses what could break out.
fn quoted(what: &str, v: &str) -> crate::Result<String> {
    if v.contains('\'') || v.contains('\n') {
        return Err(crate::Error::input(format!(
            "{what} must not contain quotes or newlines"
        )));
    }
    Ok(v.to_string())
}

/// The script for a cluster. `agent` is the download URL and SHA-256 of
/// the `dz` binary, or `None` when the AMI has it baked in; `tls` the
/// agents' TLS credentials line (empty: TLS off).
pub fn render(
    cluster: &str,
    secret: &str,
    tls: &str,
    agent: Option<(&str, &str)>,
) -> crate::Result<String> {
    let (url, sha) = agent.unwrap_or(("", ""));
    Ok(SCRIPT
        .replace("@CLUSTER@", &quoted("the cluster name", cluster)?)
        .replace("@SECRET@", &quoted("the cluster secret", secret)?)
        .replace("@TLS@", &quoted("the TLS credentials", tls)?)
        .replace("@AGENT_URL@", &quoted("DZ_AGENT_URL", url)?)
        .replace("@AGENT_SHA256@", &quoted("DZ_AGENT_SHA256", sha)?)
        .replace("@UNIT@", UNIT.trim_end()))
}

pub fn base64(script: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_user_data_fills_every_placeholder() {
        let s = render("c1", "s3cr3t", "abcd", Some(("http://h/dz", "abc"))).unwrap();
        for placeholder in [
            "@CLUSTER@",
            "@SECRET@",
            "@TLS@",
            "@AGENT_URL@",
            "@AGENT_SHA256@",
            "@UNIT@",
        ] {
            assert!(
                SCRIPT.contains(placeholder) && !s.contains(placeholder),
                "{placeholder}"
            );
        }
        assert!(
            s.contains("DZ_CLUSTER_SECRET='s3cr3t'")
                && s.contains("ExecStart=/usr/local/bin/dz machine")
        );
        assert!(s.contains("DZ_TLS_CREDENTIALS='abcd'"));
        assert!(render("c1", "it's", "", None).is_err());
    }
}
