//! The resolution matrix: what to do when operation type `after` meets
//! operation type `before` (Cheops' "consistency classes"), and which of
//! two concurrent configs wins.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What two operations of given types do when they meet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResolutionType {
    /// Only one survives: a new operation starts a new block.
    #[serde(rename = "take-one")]
    TakeOne,
    /// Both, in any order (commutative); also what a missing pair means.
    #[serde(rename = "take-both-any-order")]
    AnyOrder,
    /// Both, the earlier first.
    #[serde(rename = "take-both-keep-order")]
    KeepOrder,
    /// Both, the later first: a new operation starts a new block.
    #[serde(rename = "take-both-reverse-order")]
    ReverseOrder,
}

impl ResolutionType {
    pub fn parse(s: &str) -> Option<ResolutionType> {
        serde_json::from_value(serde_json::Value::String(s.into())).ok()
    }
}

/// One matrix entry: `before` then `after` resolves as `result`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Resolution {
    pub before: String,
    pub after: String,
    pub result: ResolutionType,
}

/// A resource's config, in the original's JSON shape
/// (`{"ResolutionMatrix":[{"Before":..,"After":..,"Result":..}]}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourceConfig {
    #[serde(default)]
    pub resolution_matrix: Vec<Resolution>,
}

impl ResourceConfig {
    pub fn is_empty(&self) -> bool {
        self.resolution_matrix.is_empty()
    }

    /// The first entry for the ordered pair, as the original looks it up;
    /// `None` means "no entry" (treated as any order).
    pub fn lookup(&self, before: &str, after: &str) -> Option<ResolutionType> {
        self.resolution_matrix
            .iter()
            .find(|r| r.before == before && r.after == after)
            .map(|r| r.result)
    }

    /// Parses a config as sent by a client; a one-line reason on error.
    pub fn parse(json: &str) -> Result<ResourceConfig, String> {
        if json.trim().is_empty() {
            return Ok(ResourceConfig::default());
        }
        serde_json::from_str(json).map_err(|e| format!("malformed config: {e}"))
    }

    /// A stable digest: the key of the deterministic config winner.
    pub fn digest(&self) -> [u8; 32] {
        let bytes = postcard::to_stdvec(self).expect("a config encodes");
        Sha256::digest(&bytes).into()
    }
}

/// Which of two concurrent configs a merge uses: a non-empty one over an
/// empty one, else the larger digest ("we take the higher one"). Unlike
/// the original, the comparison is symmetric (the original forgets to
/// update the running hash after taking a conflict's config when its own
/// was empty), so the winner does not depend on which side merges.
pub fn config_winner<'a>(a: &'a ResourceConfig, b: &'a ResourceConfig) -> &'a ResourceConfig {
    match (a.is_empty(), b.is_empty()) {
        (true, false) => b,
        (false, true) => a,
        _ if b.digest() > a.digest() => b,
        _ => a,
    }
}

#[cfg(test)]
pub(crate) fn counter_config() -> ResourceConfig {
    use ResolutionType::*;
    let r = |b: &str, a: &str, t| Resolution {
        before: b.into(),
        after: a.into(),
        result: t,
    };
    ResourceConfig {
        resolution_matrix: vec![
            r("set", "inc", KeepOrder),
            r("inc", "set", ReverseOrder),
            r("set", "dec", KeepOrder),
            r("dec", "set", ReverseOrder),
            r("set", "set", TakeOne),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_original_json() {
        let c = ResourceConfig::parse(
            r#"{"ResolutionMatrix":[{"Before":"apply","After":"apply","Result":"take-one"},
            {"Before":"apply","After":"scale","Result":"take-both-keep-order"},
            {"Before":"scale","After":"apply","Result":"take-both-reverse-order"}]}"#,
        )
        .unwrap();
        assert_eq!(c.lookup("apply", "apply"), Some(ResolutionType::TakeOne));
        assert_eq!(
            c.lookup("scale", "apply"),
            Some(ResolutionType::ReverseOrder)
        );
        assert_eq!(c.lookup("scale", "scale"), None);
        assert!(ResourceConfig::parse(r#"{"ResolutionMatrix":[{"Before":"a"}]}"#).is_err());
        assert!(
            ResourceConfig::parse(
                r#"{"ResolutionMatrix":[{"Before":"a","After":"b","Result":"sometimes"}]}"#
            )
            .is_err()
        );
    }

    #[test]
    fn the_config_winner_is_symmetric() {
        let a = counter_config();
        let mut b = counter_config();
        b.resolution_matrix.pop();
        let e = ResourceConfig::default();
        assert_eq!(config_winner(&a, &b), config_winner(&b, &a));
        assert_eq!(config_winner(&a, &e), &a);
        assert_eq!(config_winner(&e, &a), &a);
    }
}
