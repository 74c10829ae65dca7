//! Quorum systems: how many servers must answer before a view change
//! (recovery) or a write (replication) may proceed. Any recovery quorum must
//! meet any replication quorum, or an acknowledged write could be lost; a
//! configuration where they need not meet is refused.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Quorum {
    /// More than half: n/2 + 1.
    StrictMajority,
    /// At least half: (n + 1) / 2.
    NonStrictMajority,
    AllIn,
    OneIn,
    Fixed(usize),
}

impl Quorum {
    pub fn size(self, n: usize) -> usize {
        match self {
            Quorum::StrictMajority => n / 2 + 1,
            Quorum::NonStrictMajority => n.div_ceil(2),
            Quorum::AllIn => n,
            Quorum::OneIn => 1,
            Quorum::Fixed(k) => k,
        }
    }
}

impl TryFrom<String> for Quorum {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "strict-majority" => Quorum::StrictMajority,
            "non-strict-majority" => Quorum::NonStrictMajority,
            "all-in" => Quorum::AllIn,
            "one-in" => Quorum::OneIn,
            other => match other.strip_prefix("fixed:").map(str::parse::<usize>) {
                Some(Ok(k)) if k > 0 => Quorum::Fixed(k),
                _ => {
                    return Err(format!(
                        "unknown quorum {other:?} (strict-majority, non-strict-majority, all-in, one-in, fixed:K)"
                    ));
                }
            },
        })
    }
}

impl From<Quorum> for String {
    fn from(q: Quorum) -> String {
        match q {
            Quorum::StrictMajority => "strict-majority".into(),
            Quorum::NonStrictMajority => "non-strict-majority".into(),
            Quorum::AllIn => "all-in".into(),
            Quorum::OneIn => "one-in".into(),
            Quorum::Fixed(k) => format!("fixed:{k}"),
        }
    }
}

/// Refuses quorum systems that cannot work with `n` servers or that do not
/// intersect.
pub fn check(recovery: Quorum, replication: Quorum, n: usize) -> Result<(), String> {
    let (r, p) = (recovery.size(n), replication.size(n));
    for (what, size) in [("recovery", r), ("replication", p)] {
        if size == 0 || size > n {
            return Err(format!("{what} quorum of {size} does not fit {n} servers"));
        }
    }
    if r + p <= n {
        return Err(format!(
            "recovery quorum ({r} of {n}) and replication quorum ({p} of {n}) need not intersect: \
             an acknowledged write could be lost; their sizes must add up to more than {n}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_quorum_sizes_and_intersection() {
        assert_eq!(Quorum::StrictMajority.size(5), 3);
        assert_eq!(Quorum::NonStrictMajority.size(4), 2);
        assert_eq!(Quorum::NonStrictMajority.size(5), 3);
        assert!(check(Quorum::StrictMajority, Quorum::StrictMajority, 5).is_ok());
        assert!(check(Quorum::AllIn, Quorum::OneIn, 3).is_ok());
        assert!(check(Quorum::NonStrictMajority, Quorum::NonStrictMajority, 4).is_err());
        assert!(check(Quorum::OneIn, Quorum::StrictMajority, 3).is_err());
        assert!(check(Quorum::Fixed(7), Quorum::StrictMajority, 5).is_err());
        assert_eq!(
            Quorum::try_from("fixed:2".to_string()),
            Ok(Quorum::Fixed(2))
        );
        assert!(Quorum::try_from("most".to_string()).is_err());
    }
}
