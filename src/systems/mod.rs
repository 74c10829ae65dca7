//! The distributed systems that ship with DistZero, and the registry that
//! finds one by name. A system is its own folder here and one line in
//! [`registry!`]'s list below; it imports the node API and nothing above it.

pub mod blast;
pub mod cheops;
pub mod clocks;
pub mod consistency;
pub mod datasets;
pub mod kv;
pub mod pingpong;
pub mod probe;
pub mod spawner;

use std::sync::Arc;

use crate::error::{Error, Result};
pub use crate::node::{NodeSpec, Roster, System, check_role, parse_config};

/// Code that works for any system; see [`with_system`].
pub trait SystemVisitor {
    type Out;
    fn visit<S: System>(self) -> Self::Out;
}

macro_rules! registry {
    ($($system:path),+ $(,)?) => {
        /// The names of the systems `dz` knows.
        pub const SYSTEMS: &[&str] = &[$(<$system as System>::NAME),+];

        /// Runs `visitor` with the system called `name`.
        pub fn with_system<V: SystemVisitor>(name: &str, visitor: V) -> Result<V::Out> {
            $(
                if name == <$system as System>::NAME {
                    return Ok(visitor.visit::<$system>());
                }
            )+
            Err(Error::input(format!(
                "unknown system {name:?} (known: {})",
                SYSTEMS.join(", ")
            )))
        }
    };
}

// One line per system.
registry! {
    pingpong::PingPong,
    clocks::Clocks,
    blast::Blast,
    kv::Kv,
    probe::Probe,
    consistency::Consistency,
    cheops::Cheops,
    spawner::Spawner,
    datasets::Datasets,
}

/// Builds every node of `roster` once and drops it, so that a spec its
/// system refuses (a bad config) is an input error before anything starts.
pub fn check_buildable(roster: &Arc<Roster>) -> Result<()> {
    struct Build<'a>(&'a NodeSpec, &'a Arc<Roster>);
    impl SystemVisitor for Build<'_> {
        type Out = Result<()>;
        fn visit<S: System>(self) -> Result<()> {
            S::build(self.0, self.1).map(drop)
        }
    }
    for spec in &roster.nodes {
        with_system(&spec.system, Build(spec, roster))?.map_err(|e| Error::input(e.to_string()))?;
    }
    Ok(())
}
